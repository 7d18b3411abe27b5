package router

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

func routePrice(p float64) *float64 { return &p }

// routeRenewal is a paid production App Store renewal of "pro".
func routeRenewal() *event.Event {
	return &event.Event{
		ID: "e1", Type: event.TypeRenewal, Lifecycle: event.Renewed, AppID: "app1",
		ProductID: "com.example.pro.monthly", Entitlements: []string{"pro", "cloud_sync"},
		Environment: "PRODUCTION", Store: "APP_STORE", CountryCode: "US", PeriodType: "NORMAL",
		Price: routePrice(59.99), Currency: "USD",
	}
}

func routeCompile(t testing.TB, routes ...config.Route) *Routes {
	t.Helper()
	r, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRouteKeys checks each match key alone, matching and not, with the
// exact reason a miss gives.
func TestRouteKeys(t *testing.T) {
	tests := []struct {
		name   string
		match  config.Matchers
		edit   func(*event.Event) // applied to routeRenewal()
		want   bool
		reason string
	}{
		{name: "type", match: config.Matchers{Type: []string{"RENEWAL"}}, want: true, reason: "matched"},
		{name: "type any of", match: config.Matchers{Type: []string{"INITIAL_PURCHASE", "RENEWAL"}}, want: true, reason: "matched"},
		{name: "type miss", match: config.Matchers{Type: []string{"INITIAL_PURCHASE"}}, reason: "type RENEWAL not in [INITIAL_PURCHASE]"},
		{name: "type miss of two", match: config.Matchers{Type: []string{"INITIAL_PURCHASE", "PAYWALL_*"}}, reason: "type RENEWAL not in [INITIAL_PURCHASE, PAYWALL_*]"},
		{name: "type is case-sensitive", match: config.Matchers{Type: []string{"renewal"}}, reason: "type RENEWAL not in [renewal]"},
		{name: "lifecycle", match: config.Matchers{Lifecycle: []string{"renewed"}}, want: true, reason: "matched"},
		{name: "lifecycle miss", match: config.Matchers{Lifecycle: []string{"trial_converted"}}, reason: "lifecycle renewed not in [trial_converted]"},
		{name: "entitlement any of", match: config.Matchers{Entitlement: []string{"plus", "cloud_sync"}}, want: true, reason: "matched"},
		{name: "entitlement miss", match: config.Matchers{Entitlement: []string{"premium"}}, reason: "entitlement [pro, cloud_sync] has none of [premium]"},
		{
			name: "no entitlement", match: config.Matchers{Entitlement: []string{"pro"}},
			edit: func(e *event.Event) { e.Entitlements = nil }, reason: "no entitlement, need one of [pro]",
		},
		{name: "environment", match: config.Matchers{Environment: []string{"PRODUCTION"}}, want: true, reason: "matched"},
		{name: "environment miss", match: config.Matchers{Environment: []string{"SANDBOX"}}, reason: "environment PRODUCTION not in [SANDBOX]"},
		{name: "store", match: config.Matchers{Store: []string{"PLAY_STORE", "APP_STORE"}}, want: true, reason: "matched"},
		{name: "store miss", match: config.Matchers{Store: []string{"PROMOTIONAL"}}, reason: "store APP_STORE not in [PROMOTIONAL]"},
		{name: "product exact", match: config.Matchers{Product: []string{"com.example.pro.monthly"}}, want: true, reason: "matched"},
		{name: "product glob", match: config.Matchers{Product: []string{"com.example.pro.*"}}, want: true, reason: "matched"},
		{name: "product miss", match: config.Matchers{Product: []string{"*.yearly"}}, reason: "product com.example.pro.monthly not in [*.yearly]"},
		{
			name: "product by Play subscription id", match: config.Matchers{Product: []string{"premium"}},
			edit: func(e *event.Event) { e.ProductID = "premium:monthly-autorenew" }, want: true, reason: "matched",
		},
		{
			name: "product by Play base plan", match: config.Matchers{Product: []string{"premium:yearly-*"}},
			edit: func(e *event.Event) { e.ProductID = "premium:monthly-autorenew" }, reason: "product premium:monthly-autorenew not in [premium:yearly-*]",
		},
		{
			name: "no product", match: config.Matchers{Product: []string{"premium"}},
			edit: func(e *event.Event) { e.ProductID = "" }, reason: "no product, need one of [premium]",
		},
		{name: "app_id", match: config.Matchers{AppID: []string{"app1"}}, want: true, reason: "matched"},
		{name: "app_id miss", match: config.Matchers{AppID: []string{"app2"}}, reason: "app_id app1 not in [app2]"},
		{name: "country", match: config.Matchers{Country: []string{"DE", "US"}}, want: true, reason: "matched"},
		{
			name: "no country", match: config.Matchers{Country: []string{"US"}},
			edit: func(e *event.Event) { e.CountryCode = "" }, reason: "no country, need one of [US]",
		},
		{name: "period_type", match: config.Matchers{PeriodType: []string{"NORMAL"}}, want: true, reason: "matched"},
		{name: "period_type miss", match: config.Matchers{PeriodType: []string{"TRIAL", "INTRO"}}, reason: "period_type NORMAL not in [TRIAL, INTRO]"},
		{name: "no match matches everything", want: true, reason: "matched"},
		{
			name:  "all of the keys",
			match: config.Matchers{Type: []string{"RENEWAL"}, Entitlement: []string{"pro"}, Environment: []string{"PRODUCTION"}, Country: []string{"US"}},
			want:  true, reason: "matched",
		},
		{
			name:   "first failing key in key order",
			match:  config.Matchers{Country: []string{"FR"}, Store: []string{"PLAY_STORE"}, Type: []string{"RENEWAL"}},
			reason: "store APP_STORE not in [PLAY_STORE]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := routeRenewal()
			if tt.edit != nil {
				tt.edit(e)
			}
			r := routeCompile(t, config.Route{Name: "r", Match: tt.match, To: []string{"d"}})
			d := r.Route(e)
			want := Verdict{Name: "r", Matched: tt.want, Reason: tt.reason}
			if len(d.Verdicts) != 1 || d.Verdicts[0] != want {
				t.Errorf("verdicts = %+v, want [%+v]", d.Verdicts, want)
			}
			if got := len(d.Destinations) == 1; got != tt.want {
				t.Errorf("destinations = %+v, want routed %v", d.Destinations, tt.want)
			}
		})
	}
}

func TestRouteGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"RENEWAL", "RENEWAL", true},
		{"RENEWAL", "RENEWALS", false},
		{"PAYWALL_*", "PAYWALL_IMPRESSION", true},
		{"PAYWALL_*", "PAYWALL_", true},
		{"PAYWALL_*", "PAYWALL", false},
		{"*_PURCHASE", "NON_RENEWING_PURCHASE", true},
		{"*_PURCHASE", "INITIAL_PURCHASE_X", false},
		{"*", "", true},
		{"*", "anything:at.all", true},
		{"*RENEW*", "NON_RENEWING_PURCHASE", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"premium:*", "premium:monthly-autorenew", true},
		{"*:monthly-*", "premium:monthly-autorenew", true},
		{"pro_?onthly", "pro_monthly", true},
		{"pro_?onthly", "pro_onthly", false},
		{"pré?", "prés", true},
		{"?", "é", true},
		{"", "", true},
		{"", "x", false},
		{"**", "x", true},
		{"*monthly*", "pro_monthly:monthly-autorenew", true},
		{"*yearly*", "pro_monthly:monthly-autorenew", false},
		{"P*L_*", "PAYWALL_IMPRESSION", true},
		{"*A?", "AAB", true},
		{"*A?", "AB", true},
		{"*A?", "BA", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.s, func(t *testing.T) {
			g := newRouteGlob(tt.pattern)
			if got := g.match(tt.s); got != tt.want {
				t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestRouteExclude(t *testing.T) {
	tests := []struct {
		name    string
		exclude config.Matchers
		edit    func(*event.Event)
		want    bool
		reason  string
	}{
		{
			name: "excluded store", exclude: config.Matchers{Store: []string{"PROMOTIONAL"}},
			edit: func(e *event.Event) { e.Store = "PROMOTIONAL" }, reason: "excluded: store PROMOTIONAL in [PROMOTIONAL]",
		},
		{name: "other store passes", exclude: config.Matchers{Store: []string{"PROMOTIONAL"}}, want: true, reason: "matched"},
		{
			name:    "all keys must match to exclude",
			exclude: config.Matchers{Store: []string{"APP_STORE"}, Country: []string{"DE"}},
			want:    true, reason: "matched",
		},
		{
			name:    "every matching key named",
			exclude: config.Matchers{Store: []string{"APP_STORE"}, Country: []string{"US", "CA"}},
			reason:  "excluded: store APP_STORE in [APP_STORE] and country US in [US, CA]",
		},
		{
			name:    "excluded entitlement",
			exclude: config.Matchers{Entitlement: []string{"cloud_sync"}},
			reason:  "excluded: entitlement [pro, cloud_sync] has one of [cloud_sync]",
		},
		{
			name: "excluded type glob", exclude: config.Matchers{Type: []string{"RENEW*"}},
			reason: "excluded: type RENEWAL in [RENEW*]",
		},
		{name: "empty exclude rejects nothing", want: true, reason: "matched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := routeRenewal()
			if tt.edit != nil {
				tt.edit(e)
			}
			r := routeCompile(t, config.Route{
				Name: "r", Match: config.Matchers{Entitlement: []string{"pro"}}, Exclude: tt.exclude, To: []string{"d"},
			})
			want := Verdict{Name: "r", Matched: tt.want, Reason: tt.reason}
			if got := r.Route(e).Verdicts[0]; got != want {
				t.Errorf("verdict = %+v, want %+v", got, want)
			}
		})
	}
}

func TestRouteWhen(t *testing.T) {
	tests := []struct {
		name   string
		when   string
		edit   func(*event.Event)
		want   bool
		reason string
	}{
		{name: "true", when: "price != nil && price >= 50", want: true, reason: "matched"},
		{name: "false", when: "price != nil && price >= 100", reason: "when was false"},
		{name: "null price guarded", when: "price != nil && price >= 50", edit: func(e *event.Event) { e.Price = nil }, reason: "when was false"},
		{
			name: "null price unguarded is a run-time error", when: "price >= 50",
			edit:   func(e *event.Event) { e.Price = nil },
			reason: "when failed: invalid operation: <nil> >= int (1:7)",
		},
		{name: "lifecycle as a string", when: `lifecycle in ["renewed", "trial_converted"]`, want: true, reason: "matched"},
		{name: "entitlements", when: `"cloud_sync" in entitlements && currency == "USD"`, want: true, reason: "matched"},
		{
			name: "subscriber attribute", when: `subscriber_attributes["$email"].value endsWith "@example.org"`,
			edit: func(e *event.Event) {
				e.SubscriberAttributes = map[string]event.Attribute{"$email": {Value: "a@example.org"}}
			},
			want: true, reason: "matched",
		},
		{
			name: "index out of range", when: `aliases[3] == "x"`,
			reason: "when failed: index out of range: 3 (array length is 0) (1:8)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := routeRenewal()
			if tt.edit != nil {
				tt.edit(e)
			}
			r := routeCompile(t, config.Route{Name: "r", When: tt.when, To: []string{"d"}})
			want := Verdict{Name: "r", Matched: tt.want, Reason: tt.reason}
			if got := r.Route(e).Verdicts[0]; got != want {
				t.Errorf("verdict = %+v, want %+v", got, want)
			}
		})
	}
}

// TestRouteWhenAfterMatch: `when` is evaluated only for events the keys let
// through, so a miss is explained by its key, not by `when`.
func TestRouteWhenAfterMatch(t *testing.T) {
	r := routeCompile(t, config.Route{
		Name: "r", Match: config.Matchers{Type: []string{"INITIAL_PURCHASE"}}, When: "price >= 50", To: []string{"d"},
	})
	e := routeRenewal()
	e.Price = nil // the when would fail at run time
	want := Verdict{Name: "r", Reason: "type RENEWAL not in [INITIAL_PURCHASE]"}
	if got := r.Route(e).Verdicts[0]; got != want {
		t.Errorf("verdict = %+v, want %+v", got, want)
	}
}

func TestRouteDecision(t *testing.T) {
	tests := []struct {
		name     string
		routes   []config.Route
		want     []Match
		verdicts []Verdict
	}{
		{
			name: "every matching route adds its destinations",
			routes: []config.Route{
				{Name: "all", To: []string{"archive"}},
				{Name: "prod", Match: config.Matchers{Environment: []string{"PRODUCTION"}}, To: []string{"segment"}},
				{Name: "sandbox", Match: config.Matchers{Environment: []string{"SANDBOX"}}, To: []string{"debug"}},
			},
			want: []Match{{"archive", "all"}, {"segment", "prod"}},
			verdicts: []Verdict{
				{"all", true, "matched"}, {"prod", true, "matched"},
				{"sandbox", false, "environment PRODUCTION not in [SANDBOX]"},
			},
		},
		{
			name: "a destination once, credited to the first route naming it",
			routes: []config.Route{
				{Name: "pro", Match: config.Matchers{Entitlement: []string{"pro"}}, To: []string{"slack", "warehouse"}},
				{Name: "renewals", Match: config.Matchers{Type: []string{"RENEWAL"}}, To: []string{"warehouse", "segment", "slack"}},
				{Name: "twice", To: []string{"segment", "segment"}},
			},
			want: []Match{{"slack", "pro"}, {"warehouse", "pro"}, {"segment", "renewals"}},
			verdicts: []Verdict{
				{"pro", true, "matched"}, {"renewals", true, "matched"}, {"twice", true, "matched"},
			},
		},
		{
			name: "stop ends evaluation once its route matched",
			routes: []config.Route{
				{Name: "miss", Match: config.Matchers{Store: []string{"PLAY_STORE"}}, To: []string{"play"}, Stop: true},
				{Name: "stopper", Match: config.Matchers{Type: []string{"RENEWAL"}}, To: []string{"renewals"}, Stop: true},
				{Name: "later", To: []string{"archive"}},
				{Name: "last", When: "price >= 50", To: []string{"x"}},
			},
			want: []Match{{"renewals", "stopper"}},
			verdicts: []Verdict{
				{"miss", false, "store APP_STORE not in [PLAY_STORE]"},
				{"stopper", true, "matched"},
				{"later", false, `not evaluated: route "stopper" stopped evaluation`},
				{"last", false, `not evaluated: route "stopper" stopped evaluation`},
			},
		},
		{
			name: "no route matches",
			routes: []config.Route{
				{Name: "sandbox", Match: config.Matchers{Environment: []string{"SANDBOX"}}, To: []string{"debug"}},
			},
			want:     []Match{},
			verdicts: []Verdict{{"sandbox", false, "environment PRODUCTION not in [SANDBOX]"}},
		},
		{name: "no routes", want: []Match{}, verdicts: []Verdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := routeCompile(t, tt.routes...).Route(routeRenewal())
			if !reflect.DeepEqual(d.Destinations, tt.want) {
				t.Errorf("destinations = %+v, want %+v", d.Destinations, tt.want)
			}
			if !reflect.DeepEqual(d.Verdicts, tt.verdicts) {
				t.Errorf("verdicts = %+v, want %+v", d.Verdicts, tt.verdicts)
			}
		})
	}
}

func TestDecisionNames(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want string
	}{
		{"none is an empty list", Decision{}, "[]"},
		{"in order", Decision{Destinations: []Match{{"a", "r1"}, {"b", "r2"}}}, "[a b]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := tt.d.Names()
			if names == nil || fmt.Sprint(names) != tt.want {
				t.Errorf("Names() = %#v, want %s", names, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile([]config.Route{
		{Name: "ok", When: "price > 1", To: []string{"d"}},
		{Name: "typo", When: `typ == "RENEWAL"`, To: []string{"d"}},
		{Name: "not-bool", When: "price", To: []string{"d"}},
	})
	want := "route \"typo\": when: unknown name typ (1:1)\nroute \"not-bool\": when: expected bool, but got *float64"
	if err == nil || err.Error() != want {
		t.Errorf("Compile error = %v, want %q", err, want)
	}
}

// TestRouteIntoAllocations: with a reused Decision, a matching route costs
// no allocation; a miss costs at most its reason text.
func TestRouteIntoAllocations(t *testing.T) {
	tests := []struct {
		name   string
		routes []config.Route
		max    float64
	}{
		{
			name: "matches without when",
			routes: []config.Route{
				{Name: "a", Match: config.Matchers{Type: []string{"RENEWAL", "INITIAL_*"}, Environment: []string{"PRODUCTION"}}, To: []string{"x"}},
				{Name: "b", Match: config.Matchers{Entitlement: []string{"pro"}, Product: []string{"com.example.*"}}, To: []string{"y"}},
				{Name: "c", Exclude: config.Matchers{Store: []string{"PROMOTIONAL"}}, To: []string{"x", "z"}},
			},
			max: 0,
		},
		{
			name: "misses with constant reasons",
			routes: []config.Route{
				{Name: "a", Match: config.Matchers{Country: []string{"US"}}, Exclude: config.Matchers{Store: []string{"APP_STORE"}}, To: []string{"x"}},
				{Name: "b", Match: config.Matchers{Type: []string{"RENEWAL"}}, Stop: true, To: []string{"y"}},
				{Name: "c", To: []string{"z"}},
			},
			max: 0,
		},
		{
			// expr reads struct fields through reflect, which boxes each
			// non-pointer value it reads: that cost is expr's, one per field.
			name: "when reading two fields",
			routes: []config.Route{
				{Name: "a", When: `is_trial_conversion || store == "PLAY_STORE"`, To: []string{"x"}},
			},
			max: 2,
		},
		{
			name: "misses naming the event's value",
			routes: []config.Route{
				{Name: "a", Match: config.Matchers{Type: []string{"INITIAL_PURCHASE"}}, To: []string{"x"}},
				{Name: "b", Match: config.Matchers{Store: []string{"PLAY_STORE"}}, To: []string{"y"}},
			},
			max: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := routeCompile(t, tt.routes...)
			e := routeRenewal()
			var d Decision
			r.RouteInto(&d, e) // grow d once
			got := testing.AllocsPerRun(100, func() { r.RouteInto(&d, e) })
			if got > tt.max {
				t.Errorf("%v allocations per event, want at most %v", got, tt.max)
			}
		})
	}
}

// TestRouteConcurrent routes from many goroutines at once (run with -race).
func TestRouteConcurrent(t *testing.T) {
	r := routeCompile(t,
		config.Route{Name: "when", When: "price != nil && price > 10", To: []string{"a"}},
		config.Route{Name: "type", Match: config.Matchers{Type: []string{"INITIAL_PURCHASE"}}, To: []string{"b"}},
	)
	want := r.Route(routeRenewal())
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := routeRenewal()
			for j := 0; j < 200; j++ {
				if d := r.Route(e); !reflect.DeepEqual(d, want) {
					errs <- fmt.Sprintf("%+v", d)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for d := range errs {
		t.Errorf("decision %s, want %+v", d, want)
	}
}

// routeFixtureRoutes resemble config.example.yaml, with a route per key
// kind so that every fixture exercises several.
func routeFixtureRoutes() []config.Route {
	return []config.Route{
		{Name: "everything", To: []string{"archive"}},
		{Name: "production", Match: config.Matchers{Environment: []string{"PRODUCTION"}}, To: []string{"segment"}},
		{
			Name:    "paid-wins",
			Match:   config.Matchers{Type: []string{"INITIAL_PURCHASE", "RENEWAL"}, Entitlement: []string{"pro", "premium"}},
			Exclude: config.Matchers{Store: []string{"PROMOTIONAL"}},
			When:    "price != nil && price >= 5",
			To:      []string{"sales", "segment"},
		},
		{Name: "trouble", Match: config.Matchers{Lifecycle: []string{"refunded", "billing_issue"}}, To: []string{"support"}},
		{Name: "purchases", Match: config.Matchers{Type: []string{"*_PURCHASE"}}, To: []string{"purchases"}},
		{Name: "play-pro", Match: config.Matchers{Store: []string{"PLAY_STORE"}, Product: []string{"pro_monthly"}}, To: []string{"play"}},
		{Name: "sandbox", Match: config.Matchers{Environment: []string{"SANDBOX"}}, To: []string{"sandbox"}, Stop: true},
		{Name: "late", To: []string{"late"}},
	}
}

// TestRouteFixtures routes every real RevenueCat payload in
// the repository's fixtures, decoded by revenuecat.Decode.
func TestRouteFixtures(t *testing.T) {
	tests := []struct {
		file, typ string
		lifecycle event.Lifecycle
		want      []string
	}{
		{"revenuecat/cancellation_refund.json", "CANCELLATION", event.Refunded, []string{"archive", "segment", "support", "late"}},
		{"revenuecat/expiration_unsubscribe.json", "EXPIRATION", event.Expired, []string{"archive", "segment", "play", "late"}},
		{"revenuecat/initial_purchase_paid_eur.json", "INITIAL_PURCHASE", event.SubscriptionStarted, []string{"archive", "segment", "sales", "purchases", "play", "late"}},
		{"revenuecat/renewal_trial_conversion.json", "RENEWAL", event.TrialConverted, []string{"archive", "segment", "sales", "late"}},
		{"revenuecat/subscriber_alias.json", "SUBSCRIBER_ALIAS", event.Other, []string{"archive", "segment", "late"}},
		{"revenuecat/test.json", "TEST", event.Other, []string{"archive", "sandbox"}},
		{"revenuecat/transfer.json", "TRANSFER", event.Transferred, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/event-types-and-fields_1.json", "INITIAL_PURCHASE", event.SubscriptionStarted, []string{"archive", "segment", "purchases", "late"}},
		{"revenuecat-docs/sample-event-experiment-enrollment.json", "EXPERIMENT_ENROLLMENT", event.Other, []string{"archive", "late"}},
		{"revenuecat-docs/sample-event-invoice-issuance.json", "INVOICE_ISSUANCE", event.Other, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-event-refund-reversed.json", "REFUND_REVERSED", event.Other, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-event-temporary-entitlement-grant.json", "TEMPORARY_ENTITLEMENT_GRANT", event.Other, []string{"archive", "late"}},
		{"revenuecat-docs/sample-events_1.json", "INITIAL_PURCHASE", event.SubscriptionStarted, []string{"archive", "segment", "purchases", "late"}},
		{"revenuecat-docs/sample-events_2.json", "RENEWAL", event.Renewed, []string{"archive", "segment", "sales", "late"}},
		{"revenuecat-docs/sample-events_3.json", "CANCELLATION", event.Cancelled, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_4.json", "UNCANCELLATION", event.Uncancelled, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_5.json", "NON_RENEWING_PURCHASE", event.OneTimePurchase, []string{"archive", "segment", "purchases", "late"}},
		{"revenuecat-docs/sample-events_6.json", "SUBSCRIPTION_PAUSED", event.Paused, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_7.json", "BILLING_ISSUE", event.BillingIssue, []string{"archive", "segment", "support", "late"}},
		{"revenuecat-docs/sample-events_8.json", "TRANSFER", event.Transferred, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_9.json", "CANCELLATION", event.Refunded, []string{"archive", "segment", "support", "late"}},
		{"revenuecat-docs/sample-events_10.json", "PRODUCT_CHANGE", event.ProductChanged, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_11.json", "INITIAL_PURCHASE", event.TrialStarted, []string{"archive", "segment", "purchases", "late"}},
		{"revenuecat-docs/sample-events_12.json", "CANCELLATION", event.TrialCancelled, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_13.json", "EXPIRATION", event.Expired, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_14.json", "SUBSCRIPTION_EXTENDED", event.Extended, []string{"archive", "segment", "late"}},
		{"revenuecat-docs/sample-events_15.json", "VIRTUAL_CURRENCY_TRANSACTION", event.Other, []string{"archive", "segment", "late"}},
	}
	r := routeCompile(t, routeFixtureRoutes()...)
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			e := routeFixture(t, testutil.FixturePath(t, tt.file))
			if e.Type != tt.typ || e.Lifecycle != tt.lifecycle {
				t.Fatalf("decoded %s/%s, want %s/%s", e.Type, e.Lifecycle, tt.typ, tt.lifecycle)
			}
			d := r.Route(e)
			if got := d.Names(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("destinations = %v, want %v\nverdicts: %+v", got, tt.want, d.Verdicts)
			}
			if len(d.Verdicts) != r.Len() {
				t.Errorf("%d verdicts for %d routes", len(d.Verdicts), r.Len())
			}
		})
	}
	var missing []string
	for _, fx := range testutil.Fixtures(t) {
		rel := fx.Dir + "/" + fx.Name
		if !covered[rel] {
			missing = append(missing, rel)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("fixtures without a routing case: %s", strings.Join(missing, ", "))
	}
}

func routeFixture(t testing.TB, path string) *event.Event {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := revenuecat.Decode(body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// routeBenchRoutes are 50 routes of the kinds a growth team writes: by type,
// lifecycle, entitlement, store, product, country; a few with when, next to
// the type they are about (as in config.example.yaml); most do not match a
// given event.
func routeBenchRoutes() []config.Route {
	var routes []config.Route
	types := []string{"INITIAL_PURCHASE", "RENEWAL", "CANCELLATION", "EXPIRATION", "BILLING_ISSUE", "PRODUCT_CHANGE", "TRANSFER", "NON_RENEWING_PURCHASE", "SUBSCRIPTION_PAUSED", "UNCANCELLATION"}
	for i, typ := range types {
		routes = append(routes, config.Route{
			Name: "type-" + typ, Match: config.Matchers{Type: []string{typ}, Environment: []string{"PRODUCTION"}},
			To: []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	for i, l := range event.Lifecycles[:10] {
		routes = append(routes, config.Route{
			Name: "lifecycle-" + string(l), Match: config.Matchers{Lifecycle: []string{string(l)}, Entitlement: []string{"pro", "premium"}},
			To: []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	for i, c := range []string{"US", "DE", "GB", "FR", "JP", "BR", "IN", "CA", "AU", "ES"} {
		routes = append(routes, config.Route{
			Name: "country-" + c, Match: config.Matchers{Country: []string{c}, Store: []string{"APP_STORE", "PLAY_STORE"}},
			Exclude: config.Matchers{Store: []string{"PROMOTIONAL"}},
			To:      []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	for i, p := range []string{"pro_monthly", "pro_yearly:*", "com.example.*", "*.weekly", "lifetime"} {
		routes = append(routes, config.Route{
			Name: "product-" + p, Match: config.Matchers{Product: []string{p}, Type: []string{"INITIAL_PURCHASE", "RENEWAL"}},
			To: []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	for i, w := range []struct{ types, when string }{
		{"INITIAL_PURCHASE RENEWAL", "price != nil && price >= 50"},
		{"RENEWAL", "is_trial_conversion"},
		{"CANCELLATION", "price != nil && price < 0"},
		{"INITIAL_PURCHASE", `currency == "EUR" && price != nil && price > 5`},
		{"RENEWAL", "renewal_number != nil && renewal_number > 3"},
	} {
		routes = append(routes, config.Route{
			Name:  fmt.Sprintf("when-%d", i),
			Match: config.Matchers{Type: strings.Fields(w.types), Entitlement: []string{"pro"}},
			When:  w.when, To: []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	for i, g := range []string{"PAYWALL_*", "EXPERIMENT_*", "*_PURCHASE", "VIRTUAL_*", "TEMPORARY_*", "INVOICE_*", "REFUND_*", "SUBSCRIBER_*", "TEST", "*"} {
		routes = append(routes, config.Route{
			Name: fmt.Sprintf("glob-%d", i), Match: config.Matchers{Type: []string{g}, AppID: []string{"app7c41e09ab2"}},
			To: []string{fmt.Sprintf("dest-%d", i%6)},
		})
	}
	return routes
}

func TestRouteBenchRoutesAreValid(t *testing.T) {
	r := routeCompile(t, routeBenchRoutes()...)
	if r.Len() != 50 {
		t.Fatalf("%d routes, want 50", r.Len())
	}
	e := routeFixture(t, testutil.FixturePath(t, "revenuecat/initial_purchase_paid_eur.json"))
	matched := 0
	for _, v := range r.Route(e).Verdicts {
		if v.Matched {
			matched++
		}
	}
	// type, lifecycle, country, product, when, and two type globs.
	if matched != 7 {
		t.Errorf("%d of 50 routes match the fixture, want 7 (a realistic few)", matched)
	}
}

// BenchmarkRoute50 routes a real fixture through 50 routes.
func BenchmarkRoute50(b *testing.B) {
	r := routeCompile(b, routeBenchRoutes()...)
	e := routeFixture(b, testutil.FixturePath(b, "revenuecat/initial_purchase_paid_eur.json"))
	b.ReportAllocs()
	for b.Loop() {
		r.Route(e)
	}
}

// BenchmarkRouteInto50 is BenchmarkRoute50 with a reused Decision.
func BenchmarkRouteInto50(b *testing.B) {
	r := routeCompile(b, routeBenchRoutes()...)
	e := routeFixture(b, testutil.FixturePath(b, "revenuecat/initial_purchase_paid_eur.json"))
	var d Decision
	b.ReportAllocs()
	for b.Loop() {
		r.RouteInto(&d, e)
	}
}
