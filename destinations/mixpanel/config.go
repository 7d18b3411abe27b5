package mixpanel

import (
	"errors"

	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `mixpanel:` block of a destination (DESIGN §4.1).
type Config struct {
	Token secret.Secret `yaml:"token"` // the project token
	// Endpoint is the API host; requests go to {endpoint}/track and
	// {endpoint}/engage. Default https://api.mixpanel.com; EU:
	// https://api-eu.mixpanel.com.
	Endpoint string `yaml:"endpoint"`
	// SalesReporting is gross (default), proceeds or proceeds_after_tax.
	SalesReporting string `yaml:"sales_reporting"`
	// Events maps a RevenueCat type (RENEWAL) or lifecycle (trial_started)
	// to an event name, as Segment's does; "" skips that event.
	Events map[string]string `yaml:"events"`
}

// DefaultEndpoint is Mixpanel's US ingestion host.
const DefaultEndpoint = "https://api.mixpanel.com"

// Validate checks the block; each joined error starts with its key.
func (c Config) Validate() error {
	return errors.Join(fields.Check("token", "the project token of the Mixpanel project", c.Token.Value() != "",
		c.Endpoint, DefaultEndpoint, c.SalesReporting, c.Events)...)
}
