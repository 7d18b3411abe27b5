package browsertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/testutil"
	"github.com/rcrouter/rcrouter/internal/ui"
)

// testBudget bounds the whole browser session; each wait has a shorter one.
const (
	testBudget  = 50 * time.Second
	waitTimeout = 10 * time.Second
)

// chromePath finds Chromium: $CHROME_PATH when set (it must exist), else
// Debian's /usr/bin/chromium. Without one the test skips, except in CI, where
// a missing browser is a broken machine and must fail.
func chromePath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROME_PATH: %v", err)
		}
		return p
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	const msg = "chromium not found; apt-get install chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sink is the webhook destination; the test decides its answer.
type sink struct {
	status atomic.Int32
	srv    *httptest.Server
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.status.Store(http.StatusOK)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code := int(s.status.Load())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code == http.StatusOK {
			io.WriteString(w, `{"received":true}`)
			return
		}
		io.WriteString(w, `{"error":"payload rejected by the test sink"}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// testLogWriter sends the app's warnings to the test log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startApp runs the real program, with the UI, on 127.0.0.1 and stops it at
// the end of the test.
func startApp(t *testing.T, sinkURL, adminToken, inboundAuth string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  webhook_path: /webhooks/revenuecat
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  driver: sqlite
  path: rcrouter.db
defaults:
  timeout: 5s
  retry:
    max_attempts: 2
    initial_interval: 100ms
    max_interval: 1s
destinations:
  sink:
    webhook:
      url: %q
      body: raw
  archive:
    file: {path: events.jsonl}
routes:
  - name: everything
    to: [sink]
  - name: renewals-to-archive
    match: {type: RENEWAL}
    to: [archive]
  - name: production-to-archive
    match: {environment: PRODUCTION}
    to: [archive]
`, inboundAuth, adminToken, sinkURL+"/hook")
	base, _ := runApp(t, cfg)
	return base
}

// runApp writes cfg to a temporary config file and runs the real program,
// with the UI, on 127.0.0.1 until the end of the test. It returns the base
// URL and the config file's path.
func runApp(t *testing.T, cfg string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rcrouter.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{
		ConfigPath:      path,
		Logger:          slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Getenv:          func(string) (string, bool) { return "", false },
		Listener:        l,
		UI:              ui.Handler,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		l.Close()
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("app.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("the app did not stop within 15 s")
		}
	})
	return "http://" + l.Addr().String(), path
}

// poster sends RevenueCat fixtures to the app with fresh event ids.
type poster struct {
	t       *testing.T
	url     string
	auth    string
	fixture []byte
}

func (p *poster) post(id string) {
	p.t.Helper()
	// Swap the id in the fixture's own bytes, so what the destination
	// receives (and the feed shows) is RevenueCat's text, key order included.
	var env struct {
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	if err := json.Unmarshal(p.fixture, &env); err != nil || env.Event.ID == "" {
		p.t.Fatalf("fixture without event.id: %v", err)
	}
	oldID, _ := json.Marshal(env.Event.ID)
	newID, _ := json.Marshal(id)
	body := bytes.Replace(p.fixture, oldID, newID, 1)
	if !bytes.Contains(body, newID) {
		p.t.Fatalf("event id %s not replaced in the fixture", oldID)
	}
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", p.auth)
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"accepted"`)) || !bytes.Contains(out, []byte(`"sink"`)) {
		p.t.Fatalf("webhook answered %d %s", resp.StatusCode, out)
	}
}

// browser is one Chromium tab with the test's helpers.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// login signs in at laptop width: any UI page sends a new browser to the
// login form, which lands on the overview.
func (b *browser) login(base, adminToken string) {
	b.t.Helper()
	b.do("log in",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.dest-link`)),
	)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) eval(expr string) bool {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript condition (no sleeps: the browser polls it).
func (b *browser) until(what, expr string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(waitTimeout)))
}

func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// newBrowser starts headless Chromium with a fresh profile and collects
// script errors and console errors (a CSP violation is one) for the end.
func newBrowser(t *testing.T, execPath string) (*browser, func() []string) {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	// Stop the browser even if a step hangs past the budget.
	stop := time.AfterFunc(testBudget, cancelCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no timeout here, see chromedp.Run
		t.Fatalf("starting chromium: %v", err)
	}

	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	entries := chromedp.Events(ctx, log.EntryAdded)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			mu.Lock()
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text+" "+exceptionDescription(ev))
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == log.EntryLevelError {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("console %s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop.Stop()
		cancelCtx()
		cancelAlloc()
		wg.Wait()
	})
	return &browser{t: t, ctx: ctx}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

func exceptionDescription(ev runtime.EventExceptionThrown) string {
	if ev.ExceptionDetails.Exception != nil {
		return ev.ExceptionDetails.Exception.Description
	}
	return ""
}

// TestDispatchLogInBrowser is the end-to-end check of the UI: the real app,
// a real webhook, a real browser. It covers login, the live feed, a row's
// details, the pause toggle, the replay count, Retry of a dead delivery, and
// the event page's route verdicts.
func TestDispatchLogInBrowser(t *testing.T) {
	execPath := chromePath(t)
	root := testutil.ModuleRoot(t)
	fixture := testutil.ReadFixture(t, "revenuecat/initial_purchase_paid_eur.json")

	adminToken := "admin-" + randomHex(t, 16)
	inboundAuth := "Bearer inbound-" + randomHex(t, 8)
	snk := newSink(t)
	base := startApp(t, snk.srv.URL, adminToken, inboundAuth)
	post := &poster{t: t, url: base + "/webhooks/revenuecat", auth: inboundAuth, fixture: fixture}
	b, problems := newBrowser(t, execPath)

	b.login(base, adminToken)
	for _, name := range []string{"sink", "archive"} {
		if got := b.text(fmt.Sprintf(`tr[data-destination=%q] .state`, name)); got != "healthy" {
			t.Errorf("%s state on the overview: %q, want healthy", name, got)
		}
	}

	// Pause and resume from the overview (each reloads the page).
	b.do("pause archive",
		chromedp.Click(chromedp.CSS(`button[data-action="pause"][data-destination="archive"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-destination="archive"] .state-paused`)),
		chromedp.Click(chromedp.CSS(`button[data-action="resume"][data-destination="archive"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-destination="archive"] .state-healthy`)),
	)

	// The destination page, with the stream connected.
	b.do("open the destination page",
		chromedp.Navigate(base+"/ui/destinations/sink"),
		chromedp.WaitVisible(chromedp.CSS(`#feed[data-stream="open"]`)),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`),
	)

	// A webhook shows up on top of the feed without a reload.
	id1 := "e2e-" + randomHex(t, 8)
	post.post(id1)
	row1 := fmt.Sprintf(`#feed details.row[data-event-id=%q]`, id1)
	b.do("live row for the first event", chromedp.WaitVisible(chromedp.CSS(row1+`[data-status="delivered"]`)))
	if !b.eval(`window.notReloaded === true`) {
		t.Fatal("the page reloaded to show the new row")
	}
	if !b.eval(fmt.Sprintf(`document.querySelector("#feed details.row").dataset.eventId === %q`, id1)) {
		t.Error("the new row is not on top of the feed")
	}

	// Expanding the row shows what was sent and what came back.
	b.do("expand the row",
		chromedp.Click(chromedp.CSS(row1+` summary .c-time`)),
		chromedp.WaitVisible(chromedp.CSS(row1+` .req-body`)),
	)
	if body := b.text(row1 + ` .req-body`); !strings.Contains(body, id1) || !strings.Contains(body, `"app_user_id": "user_48213"`) {
		t.Errorf("request body in the row lacks the event:\n%s", body)
	}
	if code := b.text(row1 + ` .resp-code`); code != "200" {
		t.Errorf("response code in the row: %q, want 200", code)
	}
	if got := b.text(row1 + ` .resp-body`); !strings.Contains(got, `"received": true`) {
		t.Errorf("response body in the row: %q", got)
	}

	// Paused, the feed holds new rows back and counts them.
	id2 := "e2e-" + randomHex(t, 8)
	row2 := fmt.Sprintf(`#feed details.row[data-event-id=%q]`, id2)
	b.do("pause the feed", chromedp.Click(chromedp.ID("feed-toggle")))
	post.post(id2)
	b.until("the paused feed counts the new row", `document.getElementById("feed-toggle").textContent.includes("1 new")`)
	if b.eval(fmt.Sprintf(`document.querySelector(%q) !== null`, row2)) {
		t.Fatal("a row was added while the feed was paused")
	}
	b.do("resume the feed",
		chromedp.Click(chromedp.ID("feed-toggle")),
		chromedp.WaitVisible(chromedp.CSS(row2)),
	)

	// A delivery the sink refuses with 400 is dead at once.
	snk.status.Store(http.StatusBadRequest)
	id3 := "e2e-" + randomHex(t, 8)
	row3 := fmt.Sprintf(`#feed details.row[data-event-id=%q]`, id3)
	post.post(id3)
	dead := row3 + `[data-status="dead"]`
	b.do("dead row", chromedp.WaitVisible(chromedp.CSS(dead)))
	if code := b.text(dead + ` .c-code`); code != "400" {
		t.Errorf("HTTP code of the dead row: %q, want 400", code)
	}

	// Bulk replay asks the count first, and nothing happens on Cancel.
	b.do("replay dry run",
		chromedp.Click(chromedp.CSS(`button[data-action="replay"]`)),
		chromedp.WaitVisible(chromedp.ID("replay-confirm")),
	)
	if got := b.text(`#replay-confirm .confirm-text`); got != "Replay 1 dead delivery?" {
		t.Errorf("replay confirmation: %q", got)
	}
	b.do("cancel the replay",
		chromedp.Click(chromedp.CSS(`button[data-action="replay-cancel"]`)),
		chromedp.WaitNotVisible(chromedp.ID("replay-confirm")),
	)

	// Retry the dead row once the sink accepts again.
	snk.status.Store(http.StatusOK)
	b.do("retry the dead row",
		chromedp.Click(chromedp.CSS(dead+` button.retry`)),
		chromedp.WaitVisible(chromedp.CSS(dead+` .scheduled`)),
		chromedp.WaitVisible(chromedp.CSS(row3+`[data-status="delivered"]`)),
	)
	if b.eval(fmt.Sprintf(`document.querySelector(%q).open`, dead)) {
		t.Error("clicking Retry also expanded the row")
	}
	if got := b.text(row3 + `[data-status="delivered"] .c-attempt`); got != "#2" {
		t.Errorf("attempt of the retried delivery: %q, want #2", got)
	}

	// "Send test event" posts a TEST event to this destination only; it shows
	// up in the feed like any other.
	b.do("send a test event",
		chromedp.Click(chromedp.CSS(`button[data-action="test"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice a`)),
	)
	testID := b.text(`#notice a`)
	b.do("live row for the test event", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#feed details.row[data-event-id=%q][data-status="delivered"]`, testID))))
	if got := b.text(fmt.Sprintf(`#feed details.row[data-event-id=%q] .c-type`, testID)); got != "TEST" {
		t.Errorf("type of the test event row: %q, want TEST", got)
	}

	// The event page: header, route verdict, per-destination table.
	b.do("open the event page",
		chromedp.Navigate(base+"/ui/events/"+id3),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-route="everything"] .verdict`)),
	)
	if got := b.text(`tr[data-route="everything"] .verdict`); got != "matched" {
		t.Errorf("verdict of route everything: %q, want matched", got)
	}
	if got := b.text(`tr[data-route="renewals-to-archive"] .verdict`); got != "not matched" {
		t.Errorf("verdict of route renewals-to-archive: %q, want not matched", got)
	}
	if got := b.text(`tr[data-route="production-to-archive"] .verdict`); got != "matched" {
		t.Errorf("verdict of route production-to-archive: %q, want matched", got)
	}
	if got := b.text(`tr[data-destination="sink"] .d-status`); got != "delivered" {
		t.Errorf("sink delivery on the event page: %q, want delivered", got)
	}
	if got := b.text(`.ev-user`); got != "user_48213" {
		t.Errorf("app user id on the event page: %q", got)
	}

	if os.Getenv("RCROUTER_SCREENSHOTS") == "1" {
		dir := filepath.Join(root, "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b.screenshot(dir, "event")
		// A short viewport: the overview is short, and a full-page shot is
		// never smaller than the viewport.
		b.do("overview for the screenshot",
			chromedp.EmulateViewport(1280, 400),
			chromedp.Navigate(base+"/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`a.dest-link`)),
		)
		b.screenshot(dir, "overview")
		b.do("destination page for the screenshot",
			chromedp.EmulateViewport(1280, 900),
			chromedp.Navigate(base+"/ui/destinations/sink"),
			chromedp.WaitVisible(chromedp.CSS(`#feed[data-stream="open"]`)),
			chromedp.Click(chromedp.CSS(dead+` summary .c-time`)),
			chromedp.WaitVisible(chromedp.CSS(dead+` .resp-body`)),
		)
		b.screenshot(dir, "destination")
	}

	if p := problems(); len(p) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(p, "\n"))
	}
}
