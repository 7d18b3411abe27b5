package segment

import (
	"net/url"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `segment:` block of a destination.
type Config struct {
	WriteKey secret.Secret `yaml:"write_key"`
	Endpoint string        `yaml:"endpoint"` // default https://api.segment.io; https://events.eu1.segmentapis.com for the EU
	// Events maps a RevenueCat type (RENEWAL) or lifecycle (trial_started) to
	// a Segment event name; an empty name skips that event. Lifecycle keys win
	// over type keys; unnamed events use RevenueCat's default names.
	Events map[string]string `yaml:"events"`
	// SalesReporting is gross (default), proceeds or proceeds_after_tax.
	SalesReporting string `yaml:"sales_reporting"`
	BatchSize      int    `yaml:"batch_size"` // messages per batch request; default 100
}

// DefaultEndpoint is Segment's US HTTP API.
const DefaultEndpoint = "https://api.segment.io"

// DefaultBatchSize is the number of messages per batch request when
// batch_size is not set. Every Send enqueues two messages (track, identify).
const DefaultBatchSize = 100

var _ destinations.Block = (*Config)(nil)

// Validate checks the block; no message shows the write key or URL
// credentials.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	switch key := c.WriteKey.Value(); {
	case key == "":
		p.Add("write_key", "required (the write key of the Segment source)")
	case destinations.HasLineBreak(key):
		// It travels in the Authorization header.
		p.Add("write_key", "must be one line (it contains CR or LF)")
	}
	if c.Endpoint != "" {
		if msg := destinations.CheckURL(c.Endpoint, true); msg != "" {
			p.Add("endpoint", "%s", msg)
		} else if u, _ := url.Parse(c.Endpoint); u.User != nil {
			// Segment authenticates with the write key; credentials in the
			// URL would only travel to a host that is not Segment's.
			p.Add("endpoint", "must not hold credentials (user:password@); Segment authenticates with write_key")
		} else if u.RawQuery != "" || u.Fragment != "" {
			p.Add("endpoint", "%q is not an http(s) URL (e.g. %s)", c.Endpoint, DefaultEndpoint)
		}
	}
	if msg := analytics.CheckSalesReporting(c.SalesReporting); msg != "" {
		p.Add("sales_reporting", "%s", msg)
	}
	if c.BatchSize < 0 {
		p.Add("batch_size", "%d is negative", c.BatchSize)
	}
	for _, b := range analytics.CheckEvents(c.Events) {
		p.Add("events."+b.Key, "%s", b.Message)
	}
	return p
}

// Type is the `segment:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "segment",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), Options{Options: o})
		},
	}
}
