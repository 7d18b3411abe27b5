package amplitude

import (
	"errors"

	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `amplitude:` block of a destination (DESIGN §4.1).
type Config struct {
	APIKey secret.Secret `yaml:"api_key"`
	// Endpoint is the API host; requests go to {endpoint}/2/httpapi. Default
	// https://api2.amplitude.com; EU: https://api.eu.amplitude.com.
	Endpoint string `yaml:"endpoint"`
	// SalesReporting is gross (default), proceeds or proceeds_after_tax.
	SalesReporting string `yaml:"sales_reporting"`
	// Events maps a RevenueCat type (RENEWAL) or lifecycle (trial_started)
	// to an event name, as Segment's does; "" skips that event.
	Events map[string]string `yaml:"events"`
}

// DefaultEndpoint is Amplitude's US HTTP V2 API host.
const DefaultEndpoint = "https://api2.amplitude.com"

// Validate checks the block; each joined error starts with its key.
func (c Config) Validate() error {
	return errors.Join(fields.Check("api_key", "the API key of the Amplitude project", c.APIKey.Value() != "",
		c.Endpoint, DefaultEndpoint, c.SalesReporting, c.Events)...)
}
