package fields

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
)

// Check validates the keys the `amplitude:`, `mixpanel:` and `posthog:`
// blocks share. Each error starts with its key, so the config loader can
// prefix the YAML path and line; none quotes a secret. keyName is the
// secret's key (api_key, token) and what it is, for the message.
func Check(keyName, keyWhat string, keySet bool, endpoint, example, salesReporting string, events map[string]string) []error {
	var errs []error
	if !keySet {
		errs = append(errs, fmt.Errorf("%s: required (%s)", keyName, keyWhat))
	}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("endpoint: must be an absolute http(s) URL without credentials or query (e.g. %s), got %q", example, endpoint))
		}
	}
	if msg := analytics.CheckSalesReporting(salesReporting); msg != "" {
		errs = append(errs, errors.New("sales_reporting: "+msg))
	}
	for _, bad := range analytics.CheckEvents(events) {
		errs = append(errs, fmt.Errorf("events: %s", bad.Message))
	}
	return errs
}
