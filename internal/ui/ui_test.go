package ui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
)

const adminToken = secret.Secret("admin-token-for-tests")

const xss = `<script>alert(1)</script>`

// xssBody is a webhook body whose attacker-controlled fields carry markup.
// It is written out by hand: encoding/json would escape < and > and hide the
// problem.
const xssBody = `{"api_version":"1.0","event":{"id":"evt-xss","type":"INITIAL_PURCHASE",` +
	`"app_user_id":"<script>alert(1)</script>","environment":"PRODUCTION","store":"APP_STORE",` +
	`"event_timestamp_ms":1767225603000,"product_id":"pro<b>monthly</b>","price":9.99,` +
	`"subscriber_attributes":{"<script>alert(1)</script>":{"value":"<script>alert(1)</script>","updated_at_ms":1767225011000},` +
	`"$email":{"value":"\"><img src=x onerror=alert(2)>","updated_at_ms":1767225011000}}}}`

type fixture struct {
	backend  *fakeBackend
	store    *fakeStore
	replicas *fakeReplicas
	handler  http.Handler
}

// fakeReplicas answers GET /api/v1/replicas and the overview's section.
type fakeReplicas struct {
	mu   sync.Mutex
	list []store.Replica
}

func (f *fakeReplicas) Replicas(context.Context) ([]store.Replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Replica(nil), f.list...), nil
}

func (f *fakeReplicas) set(rs ...store.Replica) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = rs
}

func newFixture(t *testing.T, token secret.Secret) *fixture {
	t.Helper()
	f := &fixture{
		backend: &fakeBackend{dests: []server.DestinationStatus{
			{Name: "sink", Type: "webhook", State: "healthy", Pending: 1, Dead: 2, Delivered24h: 3, Failed24h: 4, LastError: "server_error: HTTP 500"},
			{Name: "sales-slack", Type: "slack", State: "circuit_open"},
			{Name: "archive", Type: "file", State: "paused"},
			{Name: "a/b c", Type: "webhook", State: "retrying"},
		}},
		store:    newFakeStore(),
		replicas: &fakeReplicas{},
	}
	srv := server.New(server.Options{
		WebhookPath: "/webhooks/revenuecat",
		Settings:    server.Settings{AdminToken: token},
		Backend:     f.backend,
		Store:       f.store,
		Replicas:    f.replicas,
	})
	srv.MountUI(Handler(srv))
	f.handler = srv.Handler()
	return f
}

// addXSSEvent stores the hostile event, its delivery and two dispatches.
func (f *fixture) addXSSEvent() {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.store.events["evt-xss"] = store.Event{
		ID: "evt-xss", Type: "INITIAL_PURCHASE", ReceivedAt: t0, Body: []byte(xssBody),
		Routes: json.RawMessage(`[{"name":"everything","matched":true,"reason":"no match block"},` +
			`{"name":"<script>alert(1)</script>","matched":false,"reason":"type INITIAL_PURCHASE not in [RENEWAL]"}]`),
	}
	f.store.deliveries["evt-xss"] = []store.Delivery{{
		ID: "del-1", EventID: "evt-xss", EventType: "INITIAL_PURCHASE", Destination: "sink", Route: "everything",
		State: store.Dead, Attempts: 2, LastError: "client_error: " + xss,
	}}
	f.store.dispatches = append(f.store.dispatches,
		store.Dispatch{
			ID: "dsp-1", DeliveryID: "del-1", EventID: "evt-xss", EventType: "<img src=x onerror=alert(3)>",
			Destination: "sink", Route: "everything", Attempt: 1, Status: "retrying",
			Request:   destinations.Request{Method: "POST", URL: "http://127.0.0.1/hook", Headers: map[string]string{"X-Api-Key": "<secret>"}, Body: xssBody},
			Response:  destinations.Response{StatusCode: 500, Body: xss},
			CreatedAt: t0.Add(time.Second), DurationMs: 12,
		},
		store.Dispatch{
			ID: "dsp-2", DeliveryID: "del-1", EventID: "evt-xss", EventType: "INITIAL_PURCHASE",
			Destination: "sink", Route: "everything", Attempt: 2, Status: "dead",
			Request:   destinations.Request{Method: "POST", URL: "http://127.0.0.1/hook", Body: xssBody},
			Response:  destinations.Response{StatusCode: 400, Body: `{"error":"` + xss + `"}`, Error: xss},
			CreatedAt: t0.Add(2 * time.Second), DurationMs: 1500,
		},
		store.Dispatch{
			ID: "dsp-3", DeliveryID: "del-9", EventID: "evt-ok", EventType: "RENEWAL",
			Destination: "sink", Attempt: 1, Status: "delivered",
			Response:  destinations.Response{StatusCode: 200, Body: "ok"},
			CreatedAt: t0.Add(3 * time.Second), DurationMs: 40,
		},
	)
}

type reqOpt func(*http.Request)

func withSession(token secret.Secret) reqOpt {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: server.SessionCookie, Value: server.SessionValue(token, "test-session", time.Now().Unix())})
	}
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func (f *fixture) do(t *testing.T, method, target string, form url.Values, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == server.SessionCookie {
			return c
		}
	}
	return nil
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		serverTok  secret.Secret
		token      string
		next       string
		tls        bool
		wantCode   int
		wantTarget string
		wantCookie bool
	}{
		{name: "right token", serverTok: adminToken, token: adminToken.Value(), wantCode: http.StatusSeeOther, wantTarget: "/ui/", wantCookie: true},
		{name: "right token over TLS", serverTok: adminToken, token: adminToken.Value(), tls: true, wantCode: http.StatusSeeOther, wantTarget: "/ui/", wantCookie: true},
		{name: "back to the page asked for", serverTok: adminToken, token: adminToken.Value(), next: "/ui/events/e1?x=1", wantCode: http.StatusSeeOther, wantTarget: "/ui/events/e1?x=1", wantCookie: true},
		{name: "no redirect to another site", serverTok: adminToken, token: adminToken.Value(), next: "https://evil.example/", wantCode: http.StatusSeeOther, wantTarget: "/ui/", wantCookie: true},
		{name: "no protocol-relative redirect", serverTok: adminToken, token: adminToken.Value(), next: "/ui//evil.example", wantCode: http.StatusSeeOther, wantTarget: "/ui/", wantCookie: true},
		{name: "wrong token", serverTok: adminToken, token: "admin-token-for-test", wantCode: http.StatusUnauthorized},
		{name: "empty token", serverTok: adminToken, token: "", wantCode: http.StatusUnauthorized},
		{name: "no admin token configured", serverTok: "", token: "", wantCode: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.serverTok)
			form := url.Values{"token": {tt.token}, "next": {tt.next}}
			var opts []reqOpt
			if tt.tls {
				opts = append(opts, func(r *http.Request) { r.TLS = &tls.ConnectionState{} })
			}
			w := f.do(t, http.MethodPost, "/ui/login", form, opts...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body: %s", w.Code, tt.wantCode, w.Body)
			}
			if got := w.Header().Get("Location"); got != tt.wantTarget {
				t.Errorf("Location %q, want %q", got, tt.wantTarget)
			}
			c := sessionCookie(w)
			if !tt.wantCookie {
				if c != nil {
					t.Fatalf("refused login set a cookie: %v", c)
				}
				if !strings.Contains(w.Body.String(), `class="error"`) {
					t.Errorf("refused login shows no error: %s", w.Body)
				}
				return
			}
			if c == nil {
				t.Fatal("no session cookie")
			}
			if page := f.do(t, http.MethodGet, "/ui/", nil, func(r *http.Request) { r.AddCookie(c) }); page.Code != http.StatusOK {
				t.Errorf("the new session cookie does not open the UI: %d", page.Code)
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 {
				t.Errorf("cookie flags: HttpOnly=%v SameSite=%v Path=%q MaxAge=%d", c.HttpOnly, c.SameSite, c.Path, c.MaxAge)
			}
			if c.Secure != tt.tls {
				t.Errorf("Secure=%v on a request with TLS=%v", c.Secure, tt.tls)
			}
		})
	}
}

func TestPagesNeedSession(t *testing.T) {
	f := newFixture(t, adminToken)
	f.addXSSEvent()
	paths := []string{"/ui/", "/ui/destinations/sink", "/ui/events/evt-xss", "/ui/search?event_id=x"}
	tests := []struct {
		name     string
		opts     []reqOpt
		wantCode int
	}{
		{name: "no cookie", wantCode: http.StatusSeeOther},
		{name: "forged cookie", opts: []reqOpt{withSession("another-token")}, wantCode: http.StatusSeeOther},
		{name: "session cookie", opts: []reqOpt{withSession(adminToken)}},
		{name: "bearer token", opts: []reqOpt{withHeader("Authorization", "Bearer "+adminToken.Value())}},
	}
	for _, tt := range tests {
		for _, p := range paths {
			t.Run(tt.name+" "+p, func(t *testing.T) {
				w := f.do(t, http.MethodGet, p, nil, tt.opts...)
				if tt.wantCode == http.StatusSeeOther {
					want := "/ui/login?next=" + url.QueryEscape(p)
					if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
						t.Fatalf("got %d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), want)
					}
					return
				}
				if w.Code != http.StatusOK && w.Code != http.StatusSeeOther {
					t.Fatalf("status %d; body: %s", w.Code, w.Body)
				}
				if strings.HasPrefix(w.Header().Get("Location"), "/ui/login") {
					t.Fatalf("signed-in request sent to login")
				}
			})
		}
	}
}

func TestLoginPageAndAssetsArePublic(t *testing.T) {
	f := newFixture(t, adminToken)
	for _, p := range []string{"/ui/login", "/ui/static/app.js", "/ui/static/app.css", "/ui/static/favicon.svg"} {
		t.Run(p, func(t *testing.T) {
			if w := f.do(t, http.MethodGet, p, nil); w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	csrf := server.CSRFToken(adminToken)
	tests := []struct {
		name     string
		form     url.Values
		opts     []reqOpt
		wantCode int
	}{
		{name: "no CSRF token", form: url.Values{}, opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusForbidden},
		{name: "wrong CSRF token", form: url.Values{csrfField: {server.CSRFToken("other")}}, opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusForbidden},
		{name: "session value as CSRF token", form: url.Values{csrfField: {server.SessionValue(adminToken, "test-session", time.Now().Unix())}}, opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusForbidden},
		{name: "CSRF form field", form: url.Values{csrfField: {csrf}}, opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusSeeOther},
		{name: "CSRF header", form: url.Values{}, opts: []reqOpt{withSession(adminToken), withHeader(server.CSRFHeader, csrf)}, wantCode: http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			w := f.do(t, http.MethodPost, "/ui/logout", tt.form, tt.opts...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			c := sessionCookie(w)
			if tt.wantCode != http.StatusSeeOther {
				if c != nil {
					t.Fatalf("refused logout touched the cookie: %v", c)
				}
				return
			}
			if w.Header().Get("Location") != "/ui/login" {
				t.Errorf("Location %q", w.Header().Get("Location"))
			}
			if c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" {
				t.Fatalf("cookie not cleared: %+v", c)
			}
		})
	}
}

// TestAPIPostsNeedCSRF checks the contract the page scripts rely on: with the
// session cookie, a POST to the API is refused without the CSRF header.
func TestAPIPostsNeedCSRF(t *testing.T) {
	tests := []struct {
		name     string
		opts     []reqOpt
		wantCode int
	}{
		{name: "cookie without CSRF header", opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusUnauthorized},
		{name: "cookie with wrong CSRF header", opts: []reqOpt{withSession(adminToken), withHeader(server.CSRFHeader, "nope")}, wantCode: http.StatusUnauthorized},
		{name: "cookie with CSRF header", opts: []reqOpt{withSession(adminToken), withHeader(server.CSRFHeader, server.CSRFToken(adminToken))}, wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			w := f.do(t, http.MethodPost, "/api/v1/deliveries/del-1/retry", nil, tt.opts...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			wantRetried := 0
			if tt.wantCode == http.StatusOK {
				wantRetried = 1
			}
			if got := len(f.backend.retried); got != wantRetried {
				t.Fatalf("backend retried %d deliveries, want %d", got, wantRetried)
			}
		})
	}
}

var (
	scriptTag = regexp.MustCompile(`<script[^>]*>`)
	styleAttr = regexp.MustCompile(`\sstyle=`)
	onAttr    = regexp.MustCompile(`<[^>]+\son[a-z]+=`)
	external  = regexp.MustCompile(`(src|href|action)="(https?:)?//`)
)

func TestSecurityHeadersAndNoInlineCode(t *testing.T) {
	f := newFixture(t, adminToken)
	f.addXSSEvent()
	for _, p := range []string{"/ui/login", "/ui/", "/ui/destinations/sink", "/ui/events/evt-xss", "/ui/events/missing", "/ui/static/app.js"} {
		t.Run(p, func(t *testing.T) {
			w := f.do(t, http.MethodGet, p, nil, withSession(adminToken))
			csp := w.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if got := w.Header().Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options %q", got)
			}
			if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				return
			}
			body := w.Body.String()
			for _, tag := range scriptTag.FindAllString(body, -1) {
				if !strings.Contains(tag, ` src="/ui/static/`) {
					t.Errorf("inline script (blocked by the CSP): %s", tag)
				}
			}
			if m := styleAttr.FindString(body); m != "" {
				t.Errorf("inline style attribute (blocked by the CSP)")
			}
			if m := onAttr.FindString(body); m != "" {
				t.Errorf("inline event handler: %s", m)
			}
			if m := external.FindString(body); m != "" {
				t.Errorf("page loads from another origin: %s", m)
			}
		})
	}
}

// TestAttackerControlledFieldsAreEscaped renders an event whose user id,
// subscriber attributes, type and response bodies carry markup.
func TestAttackerControlledFieldsAreEscaped(t *testing.T) {
	f := newFixture(t, adminToken)
	f.addXSSEvent()
	tests := []struct {
		name string
		path string
		want []string // escaped forms that must appear
	}{
		{name: "event page", path: "/ui/events/evt-xss", want: []string{
			`<dd class="ev-user">&lt;script&gt;alert(1)&lt;/script&gt;</dd>`,
			`<tr><th>&lt;script&gt;alert(1)&lt;/script&gt;</th><td>&lt;script&gt;alert(1)&lt;/script&gt;`,
			`&#34;&gt;&lt;img src=x onerror=alert(2)&gt;`,
			`pro&lt;b&gt;monthly&lt;/b&gt;`,
		}},
		{name: "destination feed", path: "/ui/destinations/sink", want: []string{
			`&lt;img src=x onerror=alert(3)&gt;`,
			`&#34;app_user_id&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;`,
			`<dd class="resp-error error-text">&lt;script&gt;alert(1)&lt;/script&gt;</dd>`,
		}},
		{name: "overview", path: "/ui/", want: []string{"server_error: HTTP 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, tt.path, nil, withSession(adminToken))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			body := w.Body.String()
			for _, bad := range []string{"<script>alert", "<img src=x", "<b>monthly"} {
				if strings.Contains(body, bad) {
					t.Errorf("unescaped markup %q in the page", bad)
				}
			}
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

func TestOverview(t *testing.T) {
	f := newFixture(t, adminToken)
	w := f.do(t, http.MethodGet, "/ui/", nil, withSession(adminToken))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`<a class="dest-link" href="/ui/destinations/sink">sink</a>`,
		`<span class="state state-healthy">healthy</span>`,
		`<span class="state state-circuit_open">circuit open</span>`,
		`<span class="state state-paused">paused</span>`,
		`<span class="state state-retrying">retrying</span>`,
		`data-action="resume" data-destination="archive"`,
		`data-action="pause" data-destination="sink"`,
		`href="/ui/destinations/a%2Fb%20c"`,
		`href="/ui/destinations/sink?status=dead">2</a>`,
		`<meta name="csrf-token" content="` + server.CSRFToken(adminToken) + `">`,
		`action="/ui/search"`,
		`name="csrf_token" value="` + server.CSRFToken(adminToken) + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
}

func TestOverviewReplicas(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := strings.Repeat("a", 64)
	b := strings.Repeat("b", 64)
	rep := func(name, sha string, alive bool) store.Replica {
		return store.Replica{Name: name, Version: "1.2.3", StartedAt: t0, LastSeenAt: t0.Add(time.Minute), ConfigSHA256: sha, Alive: alive}
	}
	for _, tt := range []struct {
		name     string
		replicas []store.Replica
		warn     bool
	}{
		{"one config", []store.Replica{rep("rc-1", a, true), rep("rc-2", a, true)}, false},
		{"a dead replica's old config does not count", []store.Replica{rep("rc-1", a, true), rep("rc-2", b, false)}, false},
		{"live replicas differ", []store.Replica{rep("rc-1", a, true), rep("rc-2", a, true), rep("rc-3", b, true)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			f.replicas.set(tt.replicas...)
			w := f.do(t, http.MethodGet, "/ui/", nil, withSession(adminToken))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			body := w.Body.String()
			for _, r := range tt.replicas {
				if !strings.Contains(body, `<tr data-replica="`+r.Name+`">`) {
					t.Errorf("overview lacks replica %s", r.Name)
				}
			}
			for _, want := range []string{`<code title="` + a + `">aaaaaaaaaaaa</code>`, `<span class="state state-healthy">alive</span>`} {
				if !strings.Contains(body, want) {
					t.Errorf("overview lacks %s", want)
				}
			}
			if got := strings.Contains(body, "config-mismatch"); got != tt.warn {
				t.Errorf("config mismatch warning shown: %v, want %v", got, tt.warn)
			}
		})
	}
}

func TestDestinationPage(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		wantCode   int
		wantFilter store.DispatchFilter
		want       []string
		wantOnce   []string
		notWant    []string
	}{
		{
			name: "newest page", path: "/ui/destinations/sink", wantCode: http.StatusOK,
			wantFilter: store.DispatchFilter{Destination: "sink", Limit: feedSize},
			want: []string{
				`data-live="true"`, `data-destination="sink"`,
				`<details class="row" data-id="dsp-3"`,
				`<button type="button" class="retry" data-action="retry" data-delivery-id="del-1">Retry</button>`,
				`<dd class="resp-code">400</dd>`,
				`<th>X-Api-Key</th><td>&lt;secret&gt;</td>`,
				`href="/ui/events/evt-xss"`,
				`<span class="badge badge-dead">dead</span>`,
				`<span class="c-dur">1.5 s</span>`,
				`data-action="replay" data-destination="sink"`,
				`data-action="test" data-destination="sink"`,
			},
			// dsp-1 and dsp-2 are attempts of del-1: only the newest offers Retry.
			wantOnce: []string{`data-delivery-id="del-1">Retry</button>`},
			notWant:  []string{`class="older"`},
		},
		{
			name: "filters reach the store", path: "/ui/destinations/sink?status=dead&event_type=INITIAL_PURCHASE&event_id=evt-xss", wantCode: http.StatusOK,
			wantFilter: store.DispatchFilter{Destination: "sink", Status: "dead", EventType: "INITIAL_PURCHASE", EventID: "evt-xss", Limit: feedSize},
			want:       []string{`data-id="dsp-2"`, `<option value="dead" selected>dead</option>`, `value="evt-xss"`, `data-status="dead"`},
			notWant:    []string{`data-id="dsp-1"`, `data-id="dsp-3"`},
		},
		{
			name: "older page is not live", path: "/ui/destinations/sink?before=1", wantCode: http.StatusOK,
			wantFilter: store.DispatchFilter{Destination: "sink", Before: "1", Limit: feedSize},
			want:       []string{`data-live="false"`, `href="/ui/destinations/sink">← Newest</a>`, `data-id="dsp-2"`},
			notWant:    []string{`data-id="dsp-3"`},
		},
		{name: "bad cursor", path: "/ui/destinations/sink?before=zzz", wantCode: http.StatusBadRequest},
		{name: "unknown status", path: "/ui/destinations/sink?status=lost", wantCode: http.StatusBadRequest},
		{name: "unknown destination", path: "/ui/destinations/nope", wantCode: http.StatusNotFound},
		{name: "escaped name", path: "/ui/destinations/a%2Fb%20c", wantCode: http.StatusOK,
			wantFilter: store.DispatchFilter{Destination: "a/b c", Limit: feedSize}, want: []string{`data-destination="a/b c"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			f.addXSSEvent()
			w := f.do(t, http.MethodGet, tt.path, nil, withSession(adminToken))
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantCode != http.StatusOK {
				return
			}
			for _, once := range tt.wantOnce {
				if n := strings.Count(w.Body.String(), once); n != 1 {
					t.Errorf("%d times %s, want once", n, once)
				}
			}
			if got := f.store.lastFilter(); got != tt.wantFilter {
				t.Errorf("store filter %+v, want %+v", got, tt.wantFilter)
			}
			body := w.Body.String()
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			for _, bad := range tt.notWant {
				if strings.Contains(body, bad) {
					t.Errorf("page has %s", bad)
				}
			}
		})
	}
}

func TestDestinationPageOlderLink(t *testing.T) {
	f := newFixture(t, adminToken)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range feedSize + 5 {
		f.store.dispatches = append(f.store.dispatches, store.Dispatch{
			ID: fmt.Sprintf("d%03d", i), Destination: "sink", EventID: "e", Status: "delivered",
			EventType: "RENEWAL", CreatedAt: t0.Add(time.Duration(i) * time.Second),
		})
	}
	w := f.do(t, http.MethodGet, "/ui/destinations/sink?event_type=RENEWAL", nil, withSession(adminToken))
	body := w.Body.String()
	want := `<a href="/ui/destinations/sink?before=50&amp;event_type=RENEWAL" class="older">`
	if !strings.Contains(body, want) {
		t.Fatalf("no older link %s in the page", want)
	}
	if n := strings.Count(body, `<details class="row"`); n != feedSize {
		t.Errorf("%d rows, want %d", n, feedSize)
	}
}

func TestEventPage(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantCode int
		want     []string
	}{
		{name: "stored event", path: "/ui/events/evt-xss", wantCode: http.StatusOK, want: []string{
			`<tr data-route="everything">`,
			`<span class="badge badge-delivered">matched</span>`,
			`<span class="badge badge-skipped">not matched</span>`,
			`type INITIAL_PURCHASE not in [RENEWAL]`,
			`<tr data-destination="sink" data-delivery-id="del-1">`,
			`<span class="badge badge-dead d-status">dead</span>`,
			`data-action="retry" data-delivery-id="del-1">Retry</button>`,
			`href="/ui/destinations/sink?event_id=evt-xss"`,
			`<tr><th>lifecycle</th><td>subscription_started</td></tr>`,
			`<tr><th>price</th><td>9.99 USD</td></tr>`,
			`&#34;api_version&#34;: &#34;1.0&#34;`,
			`data-event-id="evt-xss"`,
		}},
		{name: "missing event", path: "/ui/events/nope", wantCode: http.StatusNotFound, want: []string{`No event with id &#34;nope&#34;`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			f.addXSSEvent()
			w := f.do(t, http.MethodGet, tt.path, nil, withSession(adminToken))
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			for _, want := range tt.want {
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

func TestSearch(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{name: "event id", query: "?event_id=evt-1", want: "/ui/events/evt-1"},
		{name: "id needing escapes", query: "?event_id=" + url.QueryEscape(" a/b?c "), want: "/ui/events/a%2Fb%3Fc"},
		{name: "empty", query: "?event_id=", want: "/ui/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			w := f.do(t, http.MethodGet, "/ui/search"+tt.query, nil, withSession(adminToken))
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.want {
				t.Fatalf("got %d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), tt.want)
			}
		})
	}
}

func TestStaticAssets(t *testing.T) {
	f := newFixture(t, adminToken)
	js := f.do(t, http.MethodGet, "/ui/static/app.js", nil)
	etag := js.Header().Get("ETag")
	tests := []struct {
		name      string
		path      string
		opts      []reqOpt
		wantCode  int
		wantCType string
	}{
		{name: "script", path: "/ui/static/app.js", wantCode: http.StatusOK, wantCType: "text/javascript"},
		{name: "stylesheet", path: "/ui/static/app.css", wantCode: http.StatusOK, wantCType: "text/css"},
		{name: "icon", path: "/ui/static/favicon.svg", wantCode: http.StatusOK, wantCType: "image/svg+xml"},
		{name: "revalidation", path: "/ui/static/app.js", opts: []reqOpt{withHeader("If-None-Match", etag)}, wantCode: http.StatusNotModified},
		{name: "missing", path: "/ui/static/nope.js", wantCode: http.StatusNotFound},
		// The path is cleaned (a redirect) before it reaches the asset table.
		{name: "no directory escape", path: "/ui/static/../templates/layout.html"},
		{name: "no escaped directory escape", path: "/ui/static/..%2Ftemplates%2Flayout.html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, tt.path, nil, tt.opts...)
			if tt.wantCode == 0 {
				if w.Code == http.StatusOK || strings.Contains(w.Body.String(), "{{define") {
					t.Fatalf("status %d serves a template file", w.Code)
				}
				return
			}
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			if tt.wantCType != "" && !strings.HasPrefix(w.Header().Get("Content-Type"), tt.wantCType) {
				t.Errorf("Content-Type %q, want %s", w.Header().Get("Content-Type"), tt.wantCType)
			}
		})
	}
	page := f.do(t, http.MethodGet, "/ui/login", nil).Body.String()
	if !strings.Contains(page, `/ui/static/app.js?v=`+strings.Trim(etag, `"`)) {
		t.Errorf("asset URL does not carry the content hash %s", etag)
	}
}

func TestUnknownPage(t *testing.T) {
	tests := []struct {
		name         string
		opts         []reqOpt
		wantCode     int
		wantLocation string
	}{
		{name: "signed out", wantCode: http.StatusSeeOther, wantLocation: "/ui/login?next=%2Fui%2Fnope"},
		{name: "signed in", opts: []reqOpt{withSession(adminToken)}, wantCode: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			w := f.do(t, http.MethodGet, "/ui/nope", nil, tt.opts...)
			if w.Code != tt.wantCode || w.Header().Get("Location") != tt.wantLocation {
				t.Fatalf("got %d to %q, want %d to %q", w.Code, w.Header().Get("Location"), tt.wantCode, tt.wantLocation)
			}
		})
	}
}
