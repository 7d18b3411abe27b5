package router

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// FuzzWhen compiles arbitrary `when` expressions the two ways the process
// does (config validation with config.CompileWhen, the router with Compile)
// and routes every fixture event with each one that compiles. The two must
// agree on what compiles; a refusal is one line of text; routing never
// panics, and its verdict is what running the program directly says: true
// matches, false is "when was false", a run-time error is "when failed: …".
//
// Run it with: go test -run '^$' -fuzz FuzzWhen -fuzztime 5m ./router
func FuzzWhen(f *testing.F) {
	events := fuzzEvents(f)
	for _, s := range fuzzWhenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		rs, rerr := Compile([]config.Route{{Name: "r", When: src, To: []string{"d"}}})
		if src == "" {
			// No `when` at all: neither validation nor the router compiles
			// one, and the route matches every event.
			if rerr != nil {
				t.Fatalf("a route without when does not compile: %v", rerr)
			}
			for i, e := range events {
				if v := rs.Route(e).Verdicts[0]; !v.Matched {
					t.Fatalf("event %d: route without when did not match: %+v", i, v)
				}
			}
			return
		}
		prog, cerr := config.CompileWhen(src)
		if (cerr == nil) != (rerr == nil) {
			t.Fatalf("config.CompileWhen error %v, router.Compile error %v: they must agree", cerr, rerr)
		}
		if cerr != nil {
			if msg := config.ExprMessage(cerr); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("compile error message %q is empty or spans lines", msg)
			}
			return
		}
		for i, e := range events {
			d := rs.Route(e)
			if len(d.Verdicts) != 1 {
				t.Fatalf("event %d: %d verdicts for one route", i, len(d.Verdicts))
			}
			v := d.Verdicts[0]
			out, err := expr.Run(prog, e)
			switch {
			case err != nil:
				if v.Matched || !strings.HasPrefix(v.Reason, "when failed: ") || strings.Contains(v.Reason, "\n") {
					t.Fatalf("event %d: run error %v, verdict %+v", i, err, v)
				}
			case out == true:
				if !v.Matched || len(d.Destinations) != 1 {
					t.Fatalf("event %d: when is true, verdict %+v, destinations %v", i, v, d.Destinations)
				}
			default:
				if v.Matched || v.Reason != reasonWhenFalse || len(d.Destinations) != 0 {
					t.Fatalf("event %d: when is %v, verdict %+v", i, out, v)
				}
			}
		}
	})
}

// fuzzEvents is every fixture of testutil.Fixtures, decoded, plus the
// zero event (every pointer nil, every list empty).
func fuzzEvents(tb testing.TB) []*event.Event {
	tb.Helper()
	out := []*event.Event{{}}
	for _, fx := range testutil.Fixtures(tb) {
		e, err := revenuecat.Decode(fx.Body)
		if err != nil {
			tb.Fatalf("%s: %v", fx.Path, err)
		}
		out = append(out, e)
	}
	return out
}

// fuzzWhenSeeds are the `when` expressions of config.example.yaml and a set
// that touches every kind of field of the event.
func fuzzWhenSeeds(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(tb), "config.example.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	seeds := []string{
		`price != nil && price >= 50`,
		`price >= 50`,
		`lifecycle in ["renewed", "trial_converted"]`,
		`lifecycle == "refunded" || is_refund`,
		`"pro" in entitlements && currency == "USD"`,
		`subscriber_attributes["$email"].Value endsWith "@example.org"`,
		`aliases[3] == "x"`,
		`len(entitlements) > 1 and environment != "SANDBOX"`,
		`type matches "^(INITIAL|RENEWAL)" && takehome_percentage < 0.8`,
		`event_timestamp_ms / 1000 > 1700000000`,
		`any(entitlements, # startsWith "p")`,
		`price ?? 0 > 10`,
		`transferred_from[0] ?? "" != ""`,
		`is_trial_conversion ? price > 0 : false`,
		`let p = price ?? 0; p * 2 > 1`,
		`1..3 | sum() == 6`,
		`country_code in ["US", "CA"] && store != "PROMOTIONAL"`,
		`product_id contains ":" && upper(period_type) == "NORMAL"`,
		`nil`, `1`, `"x"`, `typ == 1`, `price >`, `)(`,
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*when:\s*"(.*)"`).FindAllStringSubmatch(string(b), -1) {
		seeds = append(seeds, m[1])
	}
	return seeds
}
