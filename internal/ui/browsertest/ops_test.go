package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// opsConfig routes everything to the sink and production events to the
// archive; watch_config is off so an edit waits for the preview and Apply.
func opsConfig(sinkURL, adminToken, inboundAuth, archiveEnv string) string {
	return fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  watch_config: false
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  path: rcrouter.db
destinations:
  sink:
    webhook: {url: %q, body: raw}
  archive:
    file: {path: events.jsonl}
routes:
  - name: everything
    to: [sink]
  - name: env-to-archive
    match: {environment: %s}
    to: [archive]
`, inboundAuth, adminToken, sinkURL+"/hook", archiveEnv)
}

// TestOpsPagesInBrowser: search by alias → timeline → event page; the routes
// page's "try an event"; the reload preview showing a diff, then Apply; the
// destination chart and overview trend with data points; the feed, event
// page and timeline at 390 px without horizontal scroll.
func TestOpsPagesInBrowser(t *testing.T) {
	execPath := chromePath(t)
	fixture := testutil.ReadFixture(t, "revenuecat/initial_purchase_paid_eur.json")
	const alias = "$RCAnonymousID:3fa9c1d27e6b4a0f9d12c8e4b7a65d01" // the fixture's original id and alias

	adminToken := "admin-" + randomHex(t, 16)
	inboundAuth := "Bearer inbound-" + randomHex(t, 8)
	snk := newSink(t)
	base, cfgPath := runApp(t, opsConfig(snk.srv.URL, adminToken, inboundAuth, "PRODUCTION"))
	post := &poster{t: t, url: base + "/webhooks/revenuecat", auth: inboundAuth, fixture: fixture}
	ids := []string{"ops-" + randomHex(t, 6), "ops-" + randomHex(t, 6)}
	for _, id := range ids {
		post.post(id)
	}
	// Both deliveries to the sink settle before the pages are read.
	testutil.Eventually(t, waitTimeout, func() bool {
		return delivered(t, base, adminToken, alias) == 2
	}, "the sink deliveries were not delivered")
	b, problems := newBrowser(t, execPath)
	b.login(base, adminToken)

	// Search by alias: the customer's timeline, newest first, each event
	// with where it went; then one event's page.
	b.do("search by alias",
		chromedp.SendKeys(chromedp.ID("search-q"), alias),
		chromedp.Submit(chromedp.ID("search-q")),
		chromedp.WaitVisible(chromedp.ID("timeline")),
	)
	if !b.eval(`document.querySelectorAll('#timeline tr.tl-row a.tl-dest[data-destination="sink"] .badge-delivered').length === 2`) {
		t.Error("the timeline does not show both sink deliveries delivered")
	}
	if got := b.text(`#customer`); got != alias {
		t.Errorf("timeline of %q, want the alias", got)
	}
	if !b.eval(fmt.Sprintf(`Array.from(document.querySelectorAll('#timeline tr.tl-row'), r => r.dataset.eventId).join() === %q`, ids[1]+","+ids[0])) {
		t.Errorf("timeline rows are not the two events newest first")
	}
	if got := b.text(fmt.Sprintf(`tr[data-event-id=%q] .tl-user`, ids[0])); got != "user_48213" {
		t.Errorf("user of the timeline row: %q", got)
	}
	if !b.eval(fmt.Sprintf(`document.querySelector('tr[data-event-id=%q] a.tl-dest[data-destination="archive"]') !== null`, ids[0])) {
		t.Error("the timeline row does not show the archive delivery")
	}
	b.do("open the event from the timeline",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-event-id=%q] a.tl-event`, ids[0]))),
		chromedp.WaitVisible(chromedp.CSS(`#event`)),
	)
	if got := b.text(`.ev-user`); got != "user_48213" {
		t.Errorf("event page user: %q", got)
	}
	if !b.eval(fmt.Sprintf(`document.getElementById('event').dataset.eventId === %q`, ids[0])) {
		t.Error("the timeline link opened another event")
	}
	if os.Getenv("RCROUTER_SCREENSHOTS") == "1" {
		b.do("timeline for the screenshot",
			chromedp.Navigate(base+"/ui/customers?user_id="+url.QueryEscape(alias)), chromedp.WaitVisible(chromedp.ID("timeline")))
		b.screenshot(screenshotDir(t), "timeline")
	}

	// The routes page: matches per route, and "try an event".
	b.do("open the routes page",
		chromedp.Navigate(base+"/ui/routes"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-route="everything"]`)),
	)
	for route, want := range map[string]string{"everything": "2", "env-to-archive": "2"} {
		if got := b.text(fmt.Sprintf(`tr[data-route=%q] .r-matched`, route)); got != want {
			t.Errorf("matched 24 h of %s: %q, want %s", route, got, want)
		}
	}
	sandbox := strings.Replace(string(fixture), `"environment": "PRODUCTION"`, `"environment": "SANDBOX"`, 1)
	if sandbox == string(fixture) {
		t.Fatal("fixture environment not found")
	}
	b.do("try a sandbox event",
		chromedp.SetValue(chromedp.ID("try-body"), sandbox),
		chromedp.Click(chromedp.CSS(`#try-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("try-result")),
	)
	if got := b.text(`#try-result tr[data-route="everything"] .verdict`); got != "matched" {
		t.Errorf("try: everything %q, want matched", got)
	}
	if got := b.text(`#try-result tr[data-route="env-to-archive"] .verdict`); got != "not matched" {
		t.Errorf("try: env-to-archive %q, want not matched", got)
	}
	if !b.eval(`Array.from(document.querySelectorAll('#try-result .try-dests li'), l => l.dataset.destination).join() === "sink"`) {
		t.Errorf("try: destinations %q, want only sink", b.text(`#try-result .try-dests`))
	}

	// Edit the file: the archive would get sandbox events only. The preview
	// shows what changes, the old config still runs, Apply swaps it.
	if err := os.WriteFile(cfgPath, []byte(opsConfig(snk.srv.URL, adminToken, inboundAuth, "SANDBOX")), 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("preview the reload",
		chromedp.Click(chromedp.CSS(`button[data-action="reload-preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#reload-preview tr[data-destination="archive"]`)),
	)
	if got := b.text(`#reload-preview tr[data-destination="archive"] .d-lost`); got != "-2" {
		t.Errorf("archive lost %q, want -2", got)
	}
	if !b.eval(`document.querySelectorAll('#reload-preview tbody tr').length === 1`) {
		t.Error("the preview lists more than the archive")
	}
	for _, id := range ids {
		if !b.eval(fmt.Sprintf(`document.querySelector('#reload-preview tr[data-destination="archive"] a.sample[href="/ui/events/%s"]') !== null`, id)) {
			t.Errorf("sample %s missing from the preview", id)
		}
	}
	if os.Getenv("RCROUTER_SCREENSHOTS") == "1" {
		b.screenshot(screenshotDir(t), "routes")
	}
	b.do("apply the reload",
		chromedp.Click(chromedp.CSS(`button[data-action="reload-apply"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice.ok`)),
	)
	b.do("preview again",
		chromedp.Click(chromedp.CSS(`button[data-action="reload-preview"]`)),
		chromedp.WaitVisible(chromedp.ID("reload-preview")),
	)
	if got := b.text(`#reload-preview .preview-summary`); !strings.Contains(got, "every event reaches the same destinations") {
		t.Errorf("after Apply the preview says %q", got)
	}

	// The destination page's chart and the overview's trend hold the two
	// deliveries.
	b.do("open the destination page",
		chromedp.Navigate(base+"/ui/destinations/sink"),
		chromedp.WaitVisible(chromedp.CSS(`#chart svg.chart`)),
	)
	if !b.eval(`document.querySelectorAll('#chart g.bucket').length === 24`) {
		t.Error("the chart does not have 24 hourly buckets")
	}
	if !b.eval(`Array.from(document.querySelectorAll('#chart g.bucket'), g => +g.dataset.delivered).reduce((a, n) => a + n, 0) === 2`) {
		t.Error("the chart does not count the 2 deliveries")
	}
	if !b.eval(`(() => { const r = document.querySelector('#chart g.bucket:last-of-type rect.ok'); return r && r.getBBox().height > 0; })()`) {
		t.Error("the current hour's bar has no height")
	}
	if !b.eval(`document.querySelector('#chart polyline.p95').points.length >= 1`) {
		t.Error("the latency line has no point")
	}
	if os.Getenv("RCROUTER_SCREENSHOTS") == "1" {
		b.screenshot(screenshotDir(t), "destination-chart")
	}
	b.do("overview", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`main[data-stream="open"] svg.spark[data-destination="sink"]`)))
	sparkSum := `Array.from(document.querySelectorAll('svg.spark[data-destination="sink"] g'), g => +g.dataset.delivered).reduce((a, n) => a + n, 0)`
	if !b.eval(sparkSum + ` === 2`) {
		t.Error("the overview trend does not count the 2 deliveries")
	}
	// A new delivery redraws the trend without a reload.
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	ids = append(ids, "ops-"+randomHex(t, 6))
	post.post(ids[2])
	b.until("the trend counts the new delivery", sparkSum+` === 3`)
	if !b.eval(`window.notReloaded === true && document.querySelectorAll('svg.spark[data-destination="sink"] g').length === 24`) {
		t.Error("the trend was not redrawn in place")
	}

	// Phone width: no page scrolls sideways.
	noSideScroll := `document.documentElement.scrollWidth <= window.innerWidth`
	for _, page := range []struct{ name, path, ready string }{
		{"feed", "/ui/destinations/sink", `#feed[data-stream="open"]`},
		{"event page", "/ui/events/" + ids[0], `#event`},
		{"timeline", "/ui/customers?user_id=user_48213", `#timeline`},
		{"overview", "/ui/", `a.dest-link`},
		{"routes", "/ui/routes", `#try-form`},
	} {
		b.do(page.name+" at 390 px",
			chromedp.EmulateViewport(390, 844),
			chromedp.Navigate(base+page.path),
			chromedp.WaitVisible(chromedp.CSS(page.ready)),
		)
		if !b.eval(noSideScroll) {
			t.Errorf("%s at 390 px scrolls sideways", page.name)
		}
		if page.name == "feed" {
			if !b.eval(`document.querySelectorAll('#feed details.row').length === 3`) {
				t.Error("the phone feed does not show the 3 dispatches")
			}
			if os.Getenv("RCROUTER_SCREENSHOTS") == "1" {
				b.screenshot(screenshotDir(t), "feed-phone")
			}
		}
	}
	for _, p := range problems() {
		t.Errorf("browser: %s", p)
	}
}

// delivered counts the customer's events whose sink delivery is delivered,
// through the timeline API.
func delivered(t *testing.T, base, adminToken, user string) int {
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/events?user_id="+url.QueryEscape(user), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []struct {
			Destinations []struct{ Name, Status string } `json:"destinations"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("timeline API: %v", err)
	}
	n := 0
	for _, it := range page.Items {
		for _, d := range it.Destinations {
			if d.Name == "sink" && d.Status == "delivered" {
				n++
			}
		}
	}
	return n
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testutil.ModuleRoot(t), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
