package backtest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
	"github.com/rcrouter/rcrouter/router"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// known is one stored event of the test store.
type known struct {
	id, typ, env string
	price        float64
	entitlement  string
	ago          time.Duration
}

// events: four inside the 24 h window, newest last, and one before it.
var events = []known{
	{"old", "INITIAL_PURCHASE", "PRODUCTION", 99, "pro", 48 * time.Hour},
	{"p1", "INITIAL_PURCHASE", "PRODUCTION", 99, "pro", 4 * time.Hour},
	{"p2", "RENEWAL", "PRODUCTION", 9.99, "pro", 3 * time.Hour},
	{"p3", "RENEWAL", "SANDBOX", 9.99, "basic", 2 * time.Hour},
	{"p4", "CANCELLATION", "PRODUCTION", 0, "pro", time.Hour},
}

func eventBody(k known) []byte {
	return fmt.Appendf(nil, `{"api_version":"1.0","event":{"id":%q,"type":%q,"environment":%q,"price":%v,
		"entitlement_ids":[%q],"app_user_id":"u-%s","store":"APP_STORE","product_id":"p","event_timestamp_ms":%d}}`,
		k.id, k.typ, k.env, k.price, k.entitlement, k.id, t0.Add(-k.ago).UnixMilli())
}

// openStore is a SQLite store holding events.
func openStore(t *testing.T, ks []known) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "rc.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, k := range ks {
		if _, err := st.Ingest(t.Context(), store.NewEvent{ID: k.id, Type: k.typ, ReceivedAt: t0.Add(-k.ago), Body: eventBody(k)}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// current is the running config; each case edits a copy of it.
const current = `
destinations:
  segment: {file: {path: s.jsonl}}
  slack: {file: {path: k.jsonl}}
  debug: {file: {path: d.jsonl}}
  archive: {file: {path: a.jsonl}}
routes:
  - name: all-prod
    match: {environment: PRODUCTION}
    to: [segment]
  - name: pro-wins
    match: {type: [INITIAL_PURCHASE, RENEWAL], entitlement: pro}
    to: [slack]
  - name: sandbox
    match: {environment: SANDBOX}
    to: [debug]
    stop: true
`

func compile(t *testing.T, yaml string) *router.Routes {
	t.Helper()
	dir := t.TempDir()
	yaml = "inbound: {allow_unauthenticated: true}\nadmin: {token: backtest-admin-token-0123}\n" + yaml
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "config.yaml"), func(string) (string, bool) { return "", false }, destinations.Types{file.Type()})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rs, err := router.Compile(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRun(t *testing.T) {
	st := openStore(t, events)
	tests := []struct {
		name     string
		proposed string
		want     map[string]*Change
	}{
		{"no change", current, map[string]*Change{}},
		{"only the order of keys changes", strings.Replace(current, "{type: [INITIAL_PURCHASE, RENEWAL], entitlement: pro}",
			"{entitlement: pro, type: [RENEWAL, INITIAL_PURCHASE]}", 1), map[string]*Change{}},
		{"route added", current + "  - name: archive-all\n    to: [archive]\n", map[string]*Change{
			// The sandbox route stops before it for p3.
			"archive": {Gained: 3, SamplesGained: []string{"p4", "p2", "p1"}, SamplesLost: []string{}},
		}},
		{"route removed", strings.Replace(current, `  - name: pro-wins
    match: {type: [INITIAL_PURCHASE, RENEWAL], entitlement: pro}
    to: [slack]
`, "", 1), map[string]*Change{
			"slack": {Lost: 2, SamplesGained: []string{}, SamplesLost: []string{"p2", "p1"}},
		}},
		{"narrowed by when", strings.Replace(current, "    to: [slack]\n", "    to: [slack]\n    when: \"price != nil && price >= 50\"\n", 1),
			map[string]*Change{
				"slack": {Lost: 1, SamplesGained: []string{}, SamplesLost: []string{"p2"}},
			}},
		{"stop moved", strings.Replace(strings.Replace(current, "    stop: true\n", "", 1), "    to: [segment]\n", "    to: [segment]\n    stop: true\n", 1),
			map[string]*Change{
				"slack": {Lost: 2, SamplesGained: []string{}, SamplesLost: []string{"p2", "p1"}},
			}},
		{"destination renamed", strings.ReplaceAll(current, "segment", "segment-eu"), map[string]*Change{
			"segment":    {Lost: 3, SamplesGained: []string{}, SamplesLost: []string{"p4", "p2", "p1"}},
			"segment-eu": {Gained: 3, SamplesGained: []string{"p4", "p2", "p1"}, SamplesLost: []string{}},
		}},
		{"destination swapped between routes", strings.Replace(strings.Replace(current, "to: [slack]", "to: [TMP]", 1), "to: [debug]", "to: [slack]", 1),
			map[string]*Change{
				"slack": {Gained: 1, Lost: 2, SamplesGained: []string{"p3"}, SamplesLost: []string{"p2", "p1"}},
				"debug": {Lost: 1, SamplesGained: []string{}, SamplesLost: []string{"p3"}},
				"TMP":   {Gained: 2, SamplesGained: []string{"p2", "p1"}, SamplesLost: []string{}},
			}},
	}
	cur := compile(t, current)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := strings.Replace(tt.proposed, "destinations:\n", "destinations:\n  TMP: {file: {path: t.jsonl}}\n", 1)
			res, err := Run(t.Context(), st, cur, compile(t, yaml), Options{Since: t0.Add(-24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Events != 4 {
				t.Errorf("Events = %d, want the 4 of the window", res.Events)
			}
			if !reflect.DeepEqual(res.Diff, tt.want) {
				t.Errorf("Diff:\n got %s\nwant %s", show(res.Diff), show(tt.want))
			}
			if res.Changed() != (len(tt.want) > 0) {
				t.Errorf("Changed() = %v", res.Changed())
			}
		})
	}
}

func show(d map[string]*Change) string {
	var b strings.Builder
	for k, v := range d {
		fmt.Fprintf(&b, "%s:%+v ", k, *v)
	}
	return b.String()
}

// TestRunPages: a window of many pages is read page by page, every event
// once, progress reported per page, samples capped.
func TestRunPages(t *testing.T) {
	var ks []known
	for i := range 1100 {
		ks = append(ks, known{fmt.Sprintf("e%04d", i), "RENEWAL", "PRODUCTION", 1, "pro", time.Duration(2000-i) * time.Second})
	}
	src := &countingSource{Source: openStore(t, ks)}
	var reads []int
	res, err := Run(t.Context(), src, compile(t, current), compile(t, current+"  - name: archive-all\n    to: [archive]\n"),
		Options{Progress: func(n int, _ time.Time) { reads = append(reads, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1100 || !reflect.DeepEqual(reads, []int{500, 1000, 1100}) || src.calls != 3 {
		t.Fatalf("Events %d, progress %v, %d reads; want 1100, [500 1000 1100], 3", res.Events, reads, src.calls)
	}
	c := res.Diff["archive"]
	if c == nil || c.Gained != 1100 || !reflect.DeepEqual(c.SamplesGained, []string{"e1099", "e1098", "e1097", "e1096", "e1095"}) {
		t.Fatalf("archive change = %+v; want 1100 gained, the 5 newest as samples", c)
	}
}

type countingSource struct {
	Source
	calls int
}

func (s *countingSource) Events(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	s.calls++
	return s.Source.Events(ctx, f)
}

type failingSource struct{}

func (failingSource) Events(context.Context, store.EventFilter) ([]store.Event, string, error) {
	return nil, "", store.ErrClosed
}

func TestRunStoreError(t *testing.T) {
	rs := compile(t, current)
	if _, err := Run(t.Context(), failingSource{}, rs, rs, Options{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("err = %v, want the store's", err)
	}
}
