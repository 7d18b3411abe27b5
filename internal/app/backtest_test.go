package app

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// acceptAged accepts RENEWAL events "old", "e1" and "e2" a minute apart,
// with age more between "old" and the others.
func acceptAged(t *testing.T, a *App, clk *clock.Fake, age time.Duration) {
	t.Helper()
	for _, id := range []string{"old", "e1", "e2"} {
		e, err := revenuecat.Decode(fixtureEvent(id, "RENEWAL"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Accept(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if id == "old" {
			clk.Advance(age)
		}
		clk.Advance(time.Minute)
	}
}

// TestPreviewReload: a dry run backtests the file as it is now against the
// running routes over the last 168 h of stored events, and applies nothing.
func TestPreviewReload(t *testing.T) {
	t0 := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	routes := "destinations:\n  archive:\n    file: {path: data/a.jsonl}\n  audit:\n    file: {path: data/b.jsonl}\nroutes:\n  - name: all\n    to: [archive]\n"
	a := newIdleApp(t, clk, routes)
	acceptAged(t, a, clk, 200*time.Hour) // "old" is out of the 168 h window
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(a.opts.ConfigPath, []byte(configHead()+cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write(strings.Replace(routes, "to: [archive]", "to: [audit]", 1))
	p, err := a.PreviewReload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Valid || len(p.Errors) != 0 || p.Events != 2 || len(p.Diff) != 2 {
		t.Fatalf("preview = %+v; want valid, 2 events, 2 destinations changed", p)
	}
	if c := p.Diff["archive"]; c.Lost != 2 || strings.Join(c.SamplesLost, ",") != "e2,e1" || c.Gained != 0 {
		t.Errorf("archive: %+v; want e2 and e1 lost", c)
	}
	if c := p.Diff["audit"]; c.Gained != 2 || strings.Join(c.SamplesGained, ",") != "e2,e1" || c.Lost != 0 {
		t.Errorf("audit: %+v; want e2 and e1 gained", c)
	}
	if got := a.Config().Routes[0].To; len(got) != 1 || got[0] != "archive" {
		t.Fatalf("the dry run applied the file: routes[0].to = %v", got)
	}

	write(strings.Replace(routes, "to: [archive]", "to: [archiv]", 1))
	p, err = a.PreviewReload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Valid || len(p.Errors) != 1 || !strings.Contains(p.Errors[0], `unknown destination "archiv"`) || len(p.Diff) != 0 {
		t.Fatalf("preview of an invalid file = %+v", p)
	}
}
