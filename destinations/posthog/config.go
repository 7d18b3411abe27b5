package posthog

import (
	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `posthog:` block of a destination (DESIGN §4.1).
type Config struct {
	APIKey secret.Secret `yaml:"api_key"` // the project API key (phc_…)
	// Endpoint is the ingestion host; requests go to {endpoint}/batch/.
	// Default https://us.i.posthog.com; EU: https://eu.i.posthog.com; or a
	// self-hosted instance.
	Endpoint string `yaml:"endpoint"`
	// SalesReporting is gross (default), proceeds or proceeds_after_tax.
	SalesReporting string `yaml:"sales_reporting"`
	// Events maps a RevenueCat type (RENEWAL) or lifecycle (trial_started)
	// to an event name, as Segment's does; "" skips that event.
	Events map[string]string `yaml:"events"`
}

// DefaultEndpoint is PostHog's US Cloud ingestion host.
const DefaultEndpoint = "https://us.i.posthog.com"

var _ destinations.Block = (*Config)(nil)

// Validate checks the block; no message shows the api_key.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	fields.Check(&p, "api_key", "the project API key of the PostHog project", c.APIKey.Value() != "",
		c.Endpoint, DefaultEndpoint, c.SalesReporting, c.Events)
	return p
}

// Type is the `posthog:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "posthog",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}
