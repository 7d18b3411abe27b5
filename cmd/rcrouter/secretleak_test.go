package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// leakSecrets holds one distinctive value per secret field of the config.
// The test looks for each in every form a careless component could print:
// as is, base64 (also as HTTP Basic credentials), URL-escaped.
var leakSecrets = map[string]string{
	"inbound.authorization":            "inb-auth-Q7xK2v",
	"inbound.signing_secret":           "inb-sign-W9pL4c",
	"admin.token":                      "adm-tok-R3mN8x-leak1",
	"segment.write_key":                "seg-wk-T5vB1q",
	"slack.webhook_url":                "slk-url-Y6cD2w",
	"slack.token":                      "xoxb-slk-tok-U8fG3e",
	"discord.webhook_url token":        "dsc-tok-H4jK8m-0123456789",
	"teams.webhook_url sig":            "tms-sig-P2rT6v",
	"webhook.headers.X-Api-Key":        "wh-hdr-A2kL6r",
	"webhook.headers.Authorization":    "wh-auth-S4nM7t",
	"webhook.signing_secret (key)":     "wh-sign-D9qP0y",
	"webhook.signing_secret (whsec_)":  base64.StdEncoding.EncodeToString([]byte("wh-sign-D9qP0y")),
	"webhook.url userinfo password":    "wh-url-pass-Z1hJ5",
	"segment.write_key as Basic auth":  base64.StdEncoding.EncodeToString([]byte("seg-wk-T5vB1q:")),
	"webhook.url userinfo as Basic":    base64.StdEncoding.EncodeToString([]byte("hookuser:wh-url-pass-Z1hJ5")),
	"inbound.authorization (env only)": "Bearer inb-auth-Q7xK2v",
	"amplitude.api_key":                "amp-key-H3vN9s",
	"mixpanel.token":                   "mp-tok-K8wQ2d",
	"posthog.api_key":                  "phc-key-J5tR7m",
}

// leakForms expands each secret to the forms checked for.
func leakForms() map[string]string {
	out := map[string]string{}
	for name, v := range leakSecrets {
		for form, how := range map[string]string{
			base64.StdEncoding.EncodeToString([]byte(v)):    " (base64)",
			base64.RawURLEncoding.EncodeToString([]byte(v)): " (base64url)",
			url.QueryEscape(v): " (query-escaped)",
		} {
			if _, dup := out[form]; !dup && form != v {
				out[form] = name + how
			}
		}
		out[v] = name
	}
	return out
}

// configDump loads the config at path (with the process's environment)
// and returns its dump.
func configDump(t *testing.T, path string) []byte {
	t.Helper()
	loaded, err := config.Load(path, os.LookupEnv, app.Types())
	if err != nil {
		t.Fatal(err)
	}
	dump, err := loaded.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return dump
}

// echoSink answers every request with an error (500, then 400, in turn)
// whose body echoes the request line, headers and body: the worst a
// destination can do with what it is sent.
func echoSink(t *testing.T) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		code := http.StatusInternalServerError
		if n%2 == 0 {
			code = http.StatusBadRequest
		}
		mu.Unlock()
		var echo bytes.Buffer
		fmt.Fprintf(&echo, "%s %s\n", r.Method, r.URL.RequestURI())
		r.Header.Write(&echo)
		echo.WriteString("\n")
		echo.Write(b)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		w.Write(echo.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSecretsNeverLeak runs the real process with a distinctive secret in
// every secret field, sends traffic that fails at destinations that echo
// what they were sent, and then reads everything an operator or an attacker
// with log access could see: the log (at debug level), every admin API
// answer, the live stream, /metrics, the UI pages, `rcrouter validate` and
// `routes`, and the config dump. None may contain a secret in any form.
func TestSecretsNeverLeak(t *testing.T) {
	echo := echoSink(t)
	u, _ := url.Parse(echo.URL)
	dir := t.TempDir()
	addr := freeAddr(t)
	t.Setenv("LEAK_INBOUND_AUTH", "Bearer "+leakSecrets["inbound.authorization"])
	t.Setenv("LEAK_WRITE_KEY", leakSecrets["segment.write_key"])
	cfgText := fmt.Sprintf(`server:
  listen: %q
inbound:
  authorization: ["${LEAK_INBOUND_AUTH}"]
  signing_secret: %q
admin:
  token: %q
storage:
  path: data/rcrouter.db
defaults:
  timeout: 2s
  retry: {initial_interval: 50ms, max_interval: 100ms, max_attempts: 3}
destinations:
  seg:
    segment: {write_key: "${LEAK_WRITE_KEY}", endpoint: %q}
  slack-hook:
    slack: {webhook_url: "%s/services/T0/B0/%s"}
    rate_limit: 0
  slack-bot:
    slack: {token: %q, channel: "#sales", api_url: "%s/api/"}
    rate_limit: 0
  discord-hook:
    discord: {webhook_url: "%s/api/webhooks/77/%s"}
    rate_limit: 0
  teams-hook:
    teams: {webhook_url: "%s/teams/hook?api-version=1&sig=%s"}
    rate_limit: 0
  hook:
    webhook:
      url: "http://hookuser:%s@%s/hook"
      headers: {X-Api-Key: %q, Authorization: "Bearer %s"}
      signing_secret: "whsec_%s"
  amp:
    amplitude: {api_key: %q, endpoint: %q}
  mp:
    mixpanel: {token: %q, endpoint: %q}
  ph:
    posthog: {api_key: %q, endpoint: %q}
routes:
  - name: all
    to: [seg, slack-hook, slack-bot, discord-hook, teams-hook, hook, amp, mp, ph]
`, addr, leakSecrets["inbound.signing_secret"], leakSecrets["admin.token"], echo.URL,
		echo.URL, leakSecrets["slack.webhook_url"], leakSecrets["slack.token"], echo.URL,
		echo.URL, leakSecrets["discord.webhook_url token"], echo.URL, leakSecrets["teams.webhook_url sig"],
		leakSecrets["webhook.url userinfo password"], u.Host, leakSecrets["webhook.headers.X-Api-Key"],
		leakSecrets["webhook.headers.Authorization"], leakSecrets["webhook.signing_secret (whsec_)"],
		leakSecrets["amplitude.api_key"], echo.URL, leakSecrets["mixpanel.token"], echo.URL, leakSecrets["posthog.api_key"], echo.URL)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}

	var seen bytes.Buffer // everything that was shown, labelled
	show := func(what string, b []byte) {
		fmt.Fprintf(&seen, "\n=== %s\n%s", what, b)
	}

	// The offline commands and the dump.
	for _, args := range [][]string{
		{"validate", "--config", cfg},
		{"routes", "--config", cfg, filepath.Join(dir, "event.json")},
	} {
		os.WriteFile(filepath.Join(dir, "event.json"), eventBody("leak-offline"), 0o600)
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		show(strings.Join(args[:1], " ")+" output", append(out.Bytes(), errb.Bytes()...))
	}
	show("config dump", configDump(t, cfg))

	p := startProc(t, "serve", "--config", cfg, "--log-level", "debug")
	waitReady(t, p, addr)
	admin := "Bearer " + leakSecrets["admin.token"]
	call := func(method, path string, body []byte, hdr map[string]string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		show(fmt.Sprintf("%s %s → %d %v", method, path, resp.StatusCode, resp.Header), b)
		return b
	}
	api := func(method, path string, out any) {
		t.Helper()
		b := call(method, path, nil, map[string]string{"Authorization": admin})
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, b, err)
			}
		}
	}

	// The live stream, read while the traffic flows.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/stream", nil)
	sreq.Header.Set("Authorization", admin)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		sc := bufio.NewScanner(sresp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			stream.WriteString(sc.Text() + "\n")
		}
	}()

	// Traffic: signed events, a wrong signature, a wrong authorization.
	signed := func(b []byte) map[string]string {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(leakSecrets["inbound.signing_secret"]))
		mac.Write([]byte(ts + "."))
		mac.Write(b)
		return map[string]string{"Authorization": "Bearer " + leakSecrets["inbound.authorization"],
			"X-RevenueCat-Webhook-Signature": "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))}
	}
	ids := []string{"leak-1", "leak-2", "leak-3"}
	for _, id := range ids {
		b := eventBody(id)
		if ans := call("POST", "/webhooks/revenuecat", b, signed(b)); !bytes.Contains(ans, []byte(`"accepted"`)) {
			t.Fatalf("event %s not accepted: %s", id, ans)
		}
	}
	bad := signed(eventBody("leak-bad"))
	bad["X-RevenueCat-Webhook-Signature"] = "t=1,v1=00"
	call("POST", "/webhooks/revenuecat", eventBody("leak-bad"), bad)
	call("POST", "/webhooks/revenuecat", eventBody("leak-bad"), map[string]string{"Authorization": "Bearer " + leakSecrets["inbound.authorization"] + "x"})
	for _, name := range []string{"hook", "discord-hook", "teams-hook"} {
		var test map[string]any
		api("POST", "/api/v1/destinations/"+name+"/test", &test)
		if id, _ := test["event_id"].(string); id != "" {
			ids = append(ids, id)
		}
	}

	// Wait until every delivery is final (each destination gives up after
	// three attempts), then replay the dead ones once.
	settled := func() bool {
		var ds []struct {
			Name    string `json:"name"`
			Pending int    `json:"pending"`
		}
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/destinations", nil)
		req.Header.Set("Authorization", admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&ds)
		for _, d := range ds {
			if d.Pending > 0 {
				return false
			}
		}
		return len(ds) == 9
	}
	waitSettled := func() {
		if !testutil.Poll(30*time.Second, settled) {
			t.Fatalf("deliveries did not settle; logs:\n%s", p.log())
		}
	}
	waitSettled()
	call("POST", "/api/v1/destinations/hook/replay", []byte(`{"status":"dead"}`), map[string]string{"Authorization": admin})
	waitSettled()
	// A reload, and a refused one whose problems are next to secrets.
	api("POST", "/api/v1/reload", nil)
	if err := os.WriteFile(cfg, []byte(strings.Replace(cfgText, "routes:", "  broken:\n    webhook: {url: 1, headers: {X-Api-Key: [\""+leakSecrets["webhook.headers.X-Api-Key"]+"\"]}}\nroutes:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	api("POST", "/api/v1/reload", nil)

	// Everything the admin API shows.
	api("GET", "/api/v1/destinations", nil)
	var dispatches []map[string]any
	for before := ""; ; {
		var page struct {
			Items []map[string]any `json:"items"`
			Next  string           `json:"next"`
		}
		api("GET", "/api/v1/dispatches?limit=100&before="+url.QueryEscape(before), &page)
		dispatches = append(dispatches, page.Items...)
		if page.Next == "" {
			break
		}
		before = page.Next
	}
	failed := map[string]bool{}
	for _, d := range dispatches {
		api("GET", "/api/v1/dispatches/"+d["id"].(string), nil)
		if resp, _ := d["response"].(map[string]any); resp != nil && resp["status_code"] != float64(200) {
			failed[d["destination"].(string)] = true
		}
	}
	for _, dest := range []string{"seg", "slack-hook", "slack-bot", "hook", "amp", "mp", "ph"} {
		if !failed[dest] {
			t.Errorf("no failed attempt recorded for %s: the traffic did not exercise its error path", dest)
		}
	}
	for _, id := range ids {
		api("GET", "/api/v1/events/"+id, nil)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		call("GET", path, nil, nil)
	}

	// The UI, logged in like a browser.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) {
		resp, err := browser.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("UI %s: %d", path, resp.StatusCode)
		}
		show("UI "+path, b)
	}
	resp, err := browser.PostForm("http://"+addr+"/ui/login", url.Values{"token": {leakSecrets["admin.token"]}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	show("UI login", b)
	for _, c := range jar.Cookies(&url.URL{Scheme: "http", Host: addr, Path: "/"}) {
		show("UI cookie", []byte(c.String()))
	}
	get("/ui/")
	for _, dest := range []string{"seg", "slack-hook", "slack-bot", "hook", "amp", "mp", "ph"} {
		get("/ui/destinations/" + dest)
	}
	for _, id := range ids {
		get("/ui/events/" + id)
	}
	get("/ui/search?q=leak-1")

	cancel()
	<-streamDone
	if err := stopProc(t, p, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(stream.String(), "event: dispatch") {
		t.Errorf("the stream carried no dispatch records")
	}
	show("stream", stream.Bytes())
	show("log", []byte(p.log()))

	all := seen.String()
	for form, name := range leakForms() {
		if i := strings.Index(all, form); i >= 0 {
			head := all[:i]
			where := head[strings.LastIndex(head, "\n=== ")+5:]
			where, _, _ = strings.Cut(where, "\n")
			t.Errorf("secret %s leaks in %q: …%s…", name, where, all[max(0, i-120):min(len(all), i+len(form)+40)])
		}
	}
	t.Logf("checked %d KiB of output (%d dispatch records, %d log lines) for %d secret forms",
		len(all)>>10, len(dispatches), strings.Count(p.log(), "\n"), len(leakForms()))
}

// TestPostgresPasswordNeverLeaks runs the commands and a replica on
// PostgreSQL with a password in the DSN (the test server trusts local
// connections, so any password logs in) and against servers that refuse:
// the password appears in no output, log, API answer or UI page. migrate
// and serve exit 1 when the database cannot be reached.
func TestPostgresPasswordNeverLeaks(t *testing.T) {
	const password = "pg-pass-K8wX3z"
	dsn, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn.User = url.UserPassword("postgres", password)
	dead := *dsn
	dead.Host = freeAddr(t) // nothing listens there
	wrongDB := *dsn
	wrongDB.Path = "/no_such_database_here"

	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`server:
  listen: %q
  replica: leak-replica
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  driver: postgres
  dsn: "${LEAK_PG_DSN}"
destinations:
  archive:
    file: {path: data/events.jsonl}
routes:
  - name: all
    to: [archive]
`, addr, procAuth, procAdmin)), 0o600); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	show := func(what string, b []byte) { fmt.Fprintf(&seen, "\n=== %s\n%s", what, b) }

	for _, tt := range []struct {
		name string
		dsn  string
		args []string
		want int
	}{
		{"validate", dsn.String(), []string{"validate", "--config", cfg}, exitOK},
		{"migrate", dsn.String(), []string{"migrate", "--config", cfg}, exitOK},
		{"migrate, server unreachable", dead.String(), []string{"migrate", "--config", cfg}, exitFailure},
		{"migrate, unknown database", wrongDB.String(), []string{"migrate", "--config", cfg}, exitFailure},
		{"serve, server unreachable", dead.String(), []string{"serve", "--config", cfg, "--log-level", "debug"}, exitFailure},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LEAK_PG_DSN", tt.dsn)
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.want {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, tt.want, out.String(), errb.String())
			}
			if tt.want != exitOK && errb.Len() == 0 {
				t.Error("a failure without a message")
			}
			show(tt.name, append(out.Bytes(), errb.Bytes()...))
		})
	}
	t.Setenv("LEAK_PG_DSN", dsn.String())
	show("config dump", configDump(t, cfg))

	p := startProc(t, "serve", "--config", cfg, "--log-level", "debug")
	waitReady(t, p, addr)
	if code, err := postEvent(http.DefaultClient, addr, "pg-leak-1"); code != 200 {
		t.Fatalf("post: %d %v", code, err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if _, err := browser.PostForm("http://"+addr+"/ui/login", url.Values{"token": {procAdmin}, "next": {"/ui/"}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/readyz", "/metrics", "/api/v1/replicas", "/api/v1/destinations", "/api/v1/events/pg-leak-1", "/ui/"} {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+procAdmin)
		c := http.DefaultClient
		if strings.HasPrefix(path, "/ui/") {
			c = browser
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		show("GET "+path, b)
	}
	if err := stopProc(t, p, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	show("log", []byte(p.log()))

	all := seen.String()
	for _, form := range []string{password, url.QueryEscape(password), base64.StdEncoding.EncodeToString([]byte(password))} {
		if i := strings.Index(all, form); i >= 0 {
			t.Errorf("the DSN password leaks: …%s…", all[max(0, i-160):min(len(all), i+len(form)+40)])
		}
	}
	if !strings.Contains(all, "leak-replica") {
		t.Error("the replica's name is nowhere: the test did not see what it means to check")
	}
}
