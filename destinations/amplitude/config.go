package amplitude

import (
	"github.com/rcrouter/rcrouter/destinations"
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

var _ destinations.Block = (*Config)(nil)

// Validate checks the block; no message shows the api_key.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	fields.Check(&p, "api_key", "the API key of the Amplitude project", c.APIKey.Value() != "",
		c.Endpoint, DefaultEndpoint, c.SalesReporting, c.Events)
	return p
}

// Type is the `amplitude:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "amplitude",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}
