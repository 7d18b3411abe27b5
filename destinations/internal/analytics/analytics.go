// Package analytics holds what every analytics destination (Segment,
// Amplitude, Mixpanel, PostHog) sends the way RevenueCat's own integrations
// do: RevenueCat's rc_* event names and the `events` override map, revenue
// per `sales_reporting` in USD, deterministic message ids per (event,
// destination), and flattened subscriber attributes.
//
// It is pure: no I/O, no vendor SDK. Adapters build their vendor's payload
// from these pieces.
package analytics

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/rcrouter/rcrouter/internal/event"
)

// The sales_reporting modes, as RevenueCat's integrations name them.
const (
	Gross            = "gross"              // revenue = price
	Proceeds         = "proceeds"           // after the store's commission
	ProceedsAfterTax = "proceeds_after_tax" // after commission and estimated taxes
)

// DefaultNames are RevenueCat's default event names, shared by its Segment,
// Amplitude, Mixpanel and PostHog integrations. Trial names are chosen by
// lifecycle, the rest by type.
var DefaultNames = map[string]string{
	string(event.TrialStarted):    "rc_trial_started_event",
	string(event.TrialConverted):  "rc_trial_converted_event",
	string(event.TrialCancelled):  "rc_trial_cancelled_event",
	event.TypeInitialPurchase:     "rc_initial_purchase_event",
	event.TypeRenewal:             "rc_renewal_event",
	event.TypeCancellation:        "rc_cancellation_event",
	event.TypeUncancellation:      "rc_uncancellation_event",
	event.TypeNonRenewingPurchase: "rc_non_subscription_purchase_event",
	event.TypeSubscriptionPaused:  "rc_subscription_paused_event",
	event.TypeExpiration:          "rc_expiration_event",
	event.TypeBillingIssue:        "rc_billing_issue_event",
	event.TypeProductChange:       "rc_product_change_event",
}

// EventName returns the vendor event name for e and whether the event is
// sent at all. The events map wins over DefaultNames and, within the map and
// within the defaults, a lifecycle key wins over a type key. A name mapped to
// "" turns the event off, as a blank name does in RevenueCat's dashboard.
// TRANSFER, TEST and types without a default name are not sent unless the
// map names them.
func EventName(e *event.Event, events map[string]string) (string, bool) {
	for _, k := range []string{string(e.Lifecycle), e.Type} {
		if name, ok := events[k]; ok {
			return name, name != ""
		}
	}
	if e.IsTest || e.Type == event.TypeTest || e.Type == event.TypeTransfer {
		return "", false
	}
	for _, k := range []string{string(e.Lifecycle), e.Type} {
		if name, ok := DefaultNames[k]; ok {
			return name, true
		}
	}
	return "", false
}

// CheckSalesReporting returns a problem message for a sales_reporting value
// that is not a mode, or "" ("" means gross).
func CheckSalesReporting(mode string) string {
	switch mode {
	case "", Gross, Proceeds, ProceedsAfterTax:
		return ""
	}
	return fmt.Sprintf("must be gross, proceeds or proceeds_after_tax, got %q", mode)
}

// SalesReporting returns mode with its default (gross) applied.
func SalesReporting(mode string) string {
	if mode == "" {
		return Gross
	}
	return mode
}

// BadEventKey is a key of an `events` map that is neither a lifecycle nor
// what a RevenueCat type looks like, with the message to show for it.
type BadEventKey struct {
	Key     string
	Message string
}

// CheckEvents returns the bad keys of an `events` map, sorted. The set of
// types is open (PAYWALL_IMPRESSION, custom paywall names), so any
// UPPER_CASE identifier is accepted.
func CheckEvents(events map[string]string) []BadEventKey {
	keys := make([]string, 0, len(events))
	for k := range events {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var bad []BadEventKey
	for _, k := range keys {
		if !slices.Contains(event.Lifecycles, event.Lifecycle(k)) && !upperName(k) {
			bad = append(bad, BadEventKey{Key: k, Message: fmt.Sprintf(
				"unknown event type or lifecycle %q: types are UPPER_CASE (RENEWAL), lifecycles are one of %s", k, lifecycleList())})
		}
	}
	return bad
}

func upperName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func lifecycleList() string {
	s := ""
	for i, l := range event.Lifecycles {
		if i > 0 {
			s += ", "
		}
		s += string(l)
	}
	return s
}

// Revenue is the USD revenue of e after what the sales_reporting mode
// deducts, nil when the price is unknown, negative for refunds. Missing
// percentages deduct nothing. The result is rounded to six decimals to drop
// float noise (10.84 × 0.85 = 9.214, not 9.213999…).
func Revenue(e *event.Event, mode string) *float64 {
	if e.Price == nil {
		return nil
	}
	share := 1.0
	if mode == Proceeds || mode == ProceedsAfterTax {
		share -= deref(e.CommissionPercentage)
	}
	if mode == ProceedsAfterTax {
		share -= deref(e.TaxPercentage)
	}
	v := math.Round(*e.Price*share*1e6) / 1e6
	if v == 0 {
		v = 0 // no "-0" for a refund of nothing
	}
	return &v
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// Key is the idempotency key of a delivery: the scheduler's key, or one
// derived from the event id and destination name when there is none (tests,
// the synthetic test event). Every vendor id below is derived from it, so a
// retry or replay sends the same ids.
func Key(key, eventID, destination string) string {
	if key != "" {
		return key
	}
	return "rc:" + eventID + ":" + destination
}

// MessageID returns key itself when it is at most max bytes long, else its
// SHA-256 in hex cut to max (Segment's messageId allows 100 characters).
func MessageID(key string, max int) string {
	if len(key) <= max {
		return key
	}
	return Digest(key, max)
}

// Digest is the hex SHA-256 of key cut to n characters (n ≤ 64): an id of
// only [0-9a-f] for vendors that restrict characters (Mixpanel's $insert_id
// takes at most 36 alphanumerics or "-").
func Digest(key string, n int) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	if n > 0 && n < len(h) {
		return h[:n]
	}
	return h
}

// namespace is the name-based UUID namespace of rcrouter's ids (a fixed
// random UUID), so ids cannot collide with another system's version-5 ids.
var namespace = [16]byte{0x6f, 0x2c, 0x8e, 0x41, 0x0b, 0x7d, 0x4a, 0x93, 0x9c, 0x15, 0xe2, 0x58, 0x3a, 0xd0, 0x77, 0x1b}

// UUID is a name-based (version 5, RFC 9562) UUID of key, for vendors whose
// dedup id must be a UUID (PostHog's `uuid`).
func UUID(key string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(key))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC variant
	b := hex.EncodeToString(u[:])
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:]
}

// Attributes flattens {"$email": {"value": …, "updated_at_ms": …}} to
// {"$email": …}, as RevenueCat's integrations do. It is never nil.
func Attributes(attrs map[string]event.Attribute) map[string]string {
	out := make(map[string]string, len(attrs))
	for k, a := range attrs {
		out[k] = a.Value
	}
	return out
}
