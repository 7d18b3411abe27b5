package fields

import (
	"net/url"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
)

// Check adds the problems of the keys the `amplitude:`, `mixpanel:` and
// `posthog:` blocks share; none quotes a secret. keyName is the secret's key
// (api_key, token), keyWhat what it is, for the message; example is the
// default endpoint.
func Check(p *destinations.Problems, keyName, keyWhat string, keySet bool, endpoint, example, salesReporting string, events map[string]string) {
	if !keySet {
		p.Add(keyName, "required (%s)", keyWhat)
	}
	if endpoint != "" {
		if msg := destinations.CheckURL(endpoint, true); msg != "" {
			p.Add("endpoint", "%s", msg)
		} else if u, _ := url.Parse(endpoint); u.User != nil {
			// The vendor authenticates with the key in the body; credentials
			// in the URL would only travel to a host that is not the vendor's.
			p.Add("endpoint", "must not hold credentials (user:password@); the vendor authenticates with %s", keyName)
		} else if u.RawQuery != "" || u.Fragment != "" {
			p.Add("endpoint", "must not have a query or fragment (e.g. %s)", example)
		}
	}
	if msg := analytics.CheckSalesReporting(salesReporting); msg != "" {
		p.Add("sales_reporting", "%s", msg)
	}
	for _, b := range analytics.CheckEvents(events) {
		p.Add("events."+b.Key, "%s", b.Message)
	}
}
