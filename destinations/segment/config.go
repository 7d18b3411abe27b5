package segment

import (
	"errors"
	"fmt"
	"net/url"

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

// Validate checks the block. Each joined error starts with the key it is
// about (write_key, endpoint, …), so the config loader can prefix the YAML
// path and line. No message contains the write key.
func (c Config) Validate() error {
	var errs []error
	if c.WriteKey.Value() == "" {
		errs = append(errs, errors.New("write_key: is required"))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("endpoint: %q is not an http(s) URL (e.g. %s)", c.Endpoint, DefaultEndpoint))
		}
	}
	if msg := analytics.CheckSalesReporting(c.SalesReporting); msg != "" {
		errs = append(errs, errors.New("sales_reporting: "+msg))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch_size: %d is negative", c.BatchSize))
	}
	for _, b := range analytics.CheckEvents(c.Events) {
		errs = append(errs, errors.New("events: "+b.Message))
	}
	return errors.Join(errs...)
}
