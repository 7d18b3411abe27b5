package segment

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"

	"github.com/rcrouter/rcrouter/internal/event"
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

// The sales_reporting modes, as RevenueCat's integration names them.
const (
	Gross            = "gross"              // revenue = price
	Proceeds         = "proceeds"           // after the store's commission
	ProceedsAfterTax = "proceeds_after_tax" // after commission and estimated taxes
)

// typeKey is what an events key naming a RevenueCat type looks like. The set
// of types is open (PAYWALL_IMPRESSION, custom paywall names), so any
// upper-case identifier is accepted.
var typeKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

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
	switch c.SalesReporting {
	case "", Gross, Proceeds, ProceedsAfterTax:
	default:
		errs = append(errs, fmt.Errorf("sales_reporting: %q is not one of gross, proceeds, proceeds_after_tax", c.SalesReporting))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch_size: %d is negative", c.BatchSize))
	}
	keys := make([]string, 0, len(c.Events))
	for k := range c.Events {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(event.Lifecycles, event.Lifecycle(k)) && !typeKey.MatchString(k) {
			errs = append(errs, fmt.Errorf("events: %q is neither a lifecycle (trial_started, renewed, …) nor a RevenueCat type (RENEWAL, …)", k))
		}
	}
	return errors.Join(errs...)
}

// salesReporting returns the mode with its default applied.
func (c Config) salesReporting() string {
	if c.SalesReporting == "" {
		return Gross
	}
	return c.SalesReporting
}
