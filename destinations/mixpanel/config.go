package mixpanel

import (
	"github.com/rcrouter/rcrouter/destinations"
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

var _ destinations.Block = (*Config)(nil)

// Validate checks the block; no message shows the token.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	fields.Check(&p, "token", "the project token of the Mixpanel project", c.Token.Value() != "",
		c.Endpoint, DefaultEndpoint, c.SalesReporting, c.Events)
	return p
}

// Type is the `mixpanel:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "mixpanel",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}
