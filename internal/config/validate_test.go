package config

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
)

// TestValidate pins the message of every validation rule. Each document
// gets the required inbound and admin sections appended unless whole is set.
func TestValidate(t *testing.T) {
	const dest = "\ndestinations: {a: {file: {path: x}}}\n" // a valid destination for routes
	tests := []struct {
		name  string
		doc   string
		whole bool
		vars  map[string]string
		want  []string
	}{
		{name: "valid minimal", doc: "", want: nil},
		{
			name: "listen without port",
			doc:  "server: {listen: localhost}",
			want: []string{`f.yaml:1: server.listen: must be host:port (127.0.0.1:8080, :8080), got "localhost"`},
		},
		{
			name: "listen with a bad port",
			doc:  "server: {listen: \"localhost:http\"}",
			want: []string{`f.yaml:1: server.listen: must be host:port (127.0.0.1:8080, :8080), got "localhost:http"`},
		},
		{name: "listen on every interface", doc: `server: {listen: ":8080"}`},
		{
			name: "webhook path without slash",
			doc:  "server: {webhook_path: hooks}",
			want: []string{`f.yaml:1: server.webhook_path: must start with "/", got "hooks"`},
		},
		{
			name: "webhook path with a query",
			doc:  `server: {webhook_path: "/hook?x=1"}`,
			want: []string{`f.yaml:1: server.webhook_path: must be a plain path without query, fragment or spaces, got "/hook?x=1"`},
		},
		{
			name: "webhook path under the admin API",
			doc:  "server: {webhook_path: /api/v1/hook}",
			want: []string{`f.yaml:1: server.webhook_path: "/api/v1/hook" is under /api, which rcrouter serves itself; choose another path`},
		},
		{
			name: "webhook path on a health endpoint",
			doc:  "server: {webhook_path: /healthz}",
			want: []string{`f.yaml:1: server.webhook_path: "/healthz" is under /healthz, which rcrouter serves itself; choose another path`},
		},
		{name: "webhook path that only starts like a reserved one", doc: "server: {webhook_path: /uihooks}"},
		{
			name: "max body bytes zero",
			doc:  "server: {max_body_bytes: 0}",
			want: []string{"f.yaml:1: server.max_body_bytes: must be greater than 0, got 0"},
		},
		{
			name:  "no authorization",
			doc:   "inbound: {authorization: []}\nadmin: {token: admin-token-for-tests}\n",
			whole: true,
			want:  []string{`f.yaml:1: inbound.authorization: no value set; add the Authorization header value RevenueCat sends (e.g. "${RC_WEBHOOK_AUTH}") or set allow_unauthenticated: true`},
		},
		{
			name:  "authorization from an empty variable",
			doc:   "inbound:\n  authorization: \"${RC_WEBHOOK_AUTH}\"\nadmin: {token: admin-token-for-tests}\n",
			whole: true,
			vars:  map[string]string{"RC_WEBHOOK_AUTH": ""},
			want:  []string{"f.yaml:2: inbound.authorization: no value set; set RC_WEBHOOK_AUTH or allow_unauthenticated: true"},
		},
		{
			name:  "authorization from an unset variable is reported once",
			doc:   "inbound:\n  authorization: [\"${RC_WEBHOOK_AUTH}\"]\nadmin: {token: admin-token-for-tests}\n",
			whole: true,
			want:  []string{"f.yaml:2: inbound.authorization[0]: environment variable RC_WEBHOOK_AUTH is not set"},
		},
		{
			name:  "no inbound section at all",
			doc:   "admin: {token: admin-token-for-tests}\n",
			whole: true,
			want:  []string{`f.yaml:1: inbound.authorization: no value set; add the Authorization header value RevenueCat sends (e.g. "${RC_WEBHOOK_AUTH}") or set allow_unauthenticated: true`},
		},
		{name: "unauthenticated on purpose", doc: "inbound: {allow_unauthenticated: true}\nadmin: {token: admin-token-for-tests}\n", whole: true},
		{
			name:  "no admin token",
			doc:   "inbound: {authorization: x}\nadmin: {}\n",
			whole: true,
			want:  []string{`f.yaml:2: admin.token: no token set; the admin API and UI need a bearer token (e.g. token: "${RCROUTER_ADMIN_TOKEN}")`},
		},
		{
			name:  "admin token from an empty variable",
			doc:   "inbound: {authorization: x}\nadmin:\n  token: ${RCROUTER_ADMIN_TOKEN}\n",
			whole: true,
			vars:  map[string]string{"RCROUTER_ADMIN_TOKEN": ""},
			want:  []string{"f.yaml:3: admin.token: no token set; set RCROUTER_ADMIN_TOKEN (the admin API and UI need a bearer token)"},
		},
		{
			name:  "admin token too short",
			doc:   "inbound: {authorization: x}\nadmin:\n  token: ${RCROUTER_ADMIN_TOKEN}\n",
			whole: true,
			vars:  map[string]string{"RCROUTER_ADMIN_TOKEN": "tok"},
			want:  []string{"f.yaml:3: admin.token: has 3 characters, too short to resist guessing; use at least 16 (for example the output of `openssl rand -hex 16`)"},
		},
		{name: "admin token of 16 characters", doc: "inbound: {authorization: x}\nadmin: {token: 0123456789abcdef}\n", whole: true},
		{
			name: "max connections too small",
			doc:  "server: {max_connections: 4}",
			want: []string{"f.yaml:1: server.max_connections: must be 0 (derived from the file descriptor limit) or at least 16, got 4"},
		},
		{name: "max connections", doc: "server: {max_connections: 2000}"},
		{
			name: "trusted proxies",
			doc:  "server:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"::1\", proxy.internal]\n",
			want: []string{`f.yaml:2: server.trusted_proxies[3]: must be an IP address or CIDR (10.0.0.0/8), got "proxy.internal"`},
		},
		{
			name: "unknown storage driver",
			doc:  "storage:\n  driver: mysql\n",
			want: []string{`f.yaml:2: storage.driver: must be sqlite or postgres, got "mysql"`},
		},
		{
			name: "postgres without dsn",
			doc:  "storage:\n  driver: postgres\n",
			want: []string{"f.yaml:1: storage.dsn: required for driver postgres"},
		},
		{name: "postgres with dsn", doc: "storage: {driver: postgres, dsn: \"postgres://u:p@h/db\"}"},
		{
			name: "pool size and replica name out of range",
			doc:  "storage:\n  driver: postgres\n  dsn: x\n  max_conns: 10001\nserver:\n  replica: \"rc 1\"\n",
			want: []string{
				"f.yaml:4: storage.max_conns: must be from 0 (the default, 16) to 10000, got 10001",
				`f.yaml:6: server.replica: must be at most 100 characters without spaces or control characters, got "rc 1"`,
			},
		},
		{
			name: "sqlite without path",
			doc:  "storage:\n  path: \"\"\n",
			want: []string{"f.yaml:2: storage.path: required for driver sqlite"},
		},
		{
			name: "negative retention and body size",
			doc:  "storage:\n  retention: -1h\n  dispatch_body_bytes: -1\n",
			want: []string{
				"f.yaml:2: storage.retention: must not be negative, got -1h0m0s",
				"f.yaml:3: storage.dispatch_body_bytes: must not be negative, got -1",
			},
		},
		{name: "zero retention keeps everything", doc: "storage: {retention: 0s}"},
		{
			name: "every defaults option out of range",
			doc: `defaults:
  timeout: 0s
  concurrency: 1001
  rate_limit: -1
  retry:
    max_attempts: 0
    initial_interval: 0s
    max_interval: -1s
    max_elapsed_time: 0s
  circuit_breaker:
    failure_threshold: 0
    open_for: 0s
`,
			want: []string{
				"f.yaml:2: defaults.timeout: must be greater than 0, got 0s",
				"f.yaml:3: defaults.concurrency: must be between 1 and 1000, got 1001",
				"f.yaml:4: defaults.rate_limit: must not be negative (0 means unlimited), got -1",
				"f.yaml:6: defaults.retry.max_attempts: must be at least 1, got 0",
				"f.yaml:7: defaults.retry.initial_interval: must be greater than 0, got 0s",
				"f.yaml:8: defaults.retry.max_interval: must be greater than 0, got -1s",
				"f.yaml:9: defaults.retry.max_elapsed_time: must be greater than 0, got 0s",
				"f.yaml:11: defaults.circuit_breaker.failure_threshold: must be at least 1, got 0",
				"f.yaml:12: defaults.circuit_breaker.open_for: must be greater than 0, got 0s",
			},
		},
		{
			name: "initial interval above max interval",
			doc:  "defaults:\n  retry:\n    initial_interval: 2h\n",
			want: []string{"f.yaml:3: defaults.retry.initial_interval: initial_interval 2h0m0s is greater than max_interval 1h0m0s"},
		},
		{
			name: "destination override checked at its own line",
			doc:  "destinations:\n  a:\n    file: {path: x}\n    concurrency: 0\n    retry:\n      max_interval: 1s\n",
			want: []string{
				"f.yaml:4: destinations.a.concurrency: must be between 1 and 1000, got 0",
				"f.yaml:6: destinations.a.retry.max_interval: initial_interval 5s is greater than max_interval 1s",
			},
		},
		{
			name: "bad default blamed once, not on every destination",
			doc:  "defaults: {concurrency: 0}\ndestinations:\n  a: {file: {path: x}}\n  b: {file: {path: y}}\n",
			want: []string{"f.yaml:1: defaults.concurrency: must be between 1 and 1000, got 0"},
		},
		{
			name: "invalid destination name",
			doc:  "destinations:\n  \"sales slack\": {file: {path: x}}\n",
			want: []string{`f.yaml:2: destinations.sales slack: invalid destination name "sales slack": use letters, digits, "_", "." and "-"`},
		},
		{
			name: "no type block",
			doc:  "destinations:\n  a:\n    timeout: 5s\n",
			want: []string{"f.yaml:2: destinations.a: no type block; add one of segment, slack, webhook, file"},
		},
		{
			name: "two type blocks",
			doc:  "destinations:\n  a:\n    webhook: {url: \"https://example.com\"}\n    file: {path: x}\n",
			want: []string{"f.yaml:4: destinations.a.file: a destination has exactly one type block, and this one already has webhook"},
		},
		{
			name: "empty type block",
			doc:  "destinations:\n  a:\n    file:\n",
			want: []string{"f.yaml:3: destinations.a.file.path: required"},
		},
		{
			name: "segment problems",
			doc: `destinations:
  s:
    segment:
      endpoint: api.segment.io
      sales_reporting: net
      events: {renewd: Renewed, RENEWAL: Renewed, trial_started: Trial, PAYWALL_X: Paywall}
`,
			want: []string{
				"f.yaml:3: destinations.s.segment.write_key: required (the write key of the Segment source)",
				`f.yaml:4: destinations.s.segment.endpoint: must be an absolute http(s) URL, got "api.segment.io"`,
				`f.yaml:5: destinations.s.segment.sales_reporting: must be gross, proceeds or proceeds_after_tax, got "net"`,
				`f.yaml:6: destinations.s.segment.events.renewd: unknown event type or lifecycle "renewd": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other`,
			},
		},
		{
			name: "slack with neither mode",
			doc:  "destinations:\n  s:\n    slack: {channel_name: x}\n",
			want: []string{
				"f.yaml:3: destinations.s.slack.channel_name: unknown key",
				"f.yaml:3: destinations.s.slack: set webhook_url (incoming webhook), or token and channel (bot)",
			},
		},
		{
			name: "slack with both modes",
			doc:  "destinations:\n  s:\n    slack: {webhook_url: \"https://hooks.slack.com/x\", token: xoxb-1, channel: \"#c\"}\n",
			want: []string{"f.yaml:3: destinations.s.slack: set either webhook_url, or token and channel, not both"},
		},
		{
			name: "slack token without channel",
			doc:  "destinations:\n  s:\n    slack:\n      token: xoxb-1\n",
			want: []string{"f.yaml:3: destinations.s.slack.channel: required with token"},
		},
		{
			name: "slack channel without token",
			doc:  "destinations:\n  s:\n    slack:\n      channel: \"#c\"\n",
			want: []string{"f.yaml:3: destinations.s.slack.token: required with channel"},
		},
		{
			name: "slack webhook url is not quoted",
			doc:  "destinations:\n  s:\n    slack:\n      webhook_url: hooks.slack.com/services/T/B/SECRET\n      api_url: slack.com/api\n",
			want: []string{
				"f.yaml:4: destinations.s.slack.webhook_url: must be an absolute http(s) URL",
				`f.yaml:5: destinations.s.slack.api_url: must be an absolute http(s) URL, got "slack.com/api"`,
			},
		},
		{
			name: "webhook problems",
			doc:  "destinations:\n  w:\n    webhook:\n      url: ftp://example.com/x\n      method: FETCH\n      body: json\n",
			want: []string{
				"f.yaml:4: destinations.w.webhook.url: must be an absolute http(s) URL",
				`f.yaml:5: destinations.w.webhook.method: must be GET, POST, PUT, PATCH or DELETE, got "FETCH"`,
				`f.yaml:6: destinations.w.webhook.body: must be raw, normalized or template, got "json"`,
			},
		},
		{
			name: "webhook without url",
			doc:  "destinations:\n  w:\n    webhook: {method: post}\n",
			want: []string{"f.yaml:3: destinations.w.webhook.url: required"},
		},
		{
			name: "webhook template without body template",
			doc:  "destinations:\n  w:\n    webhook:\n      url: https://example.com\n      template: '{}'\n",
			want: []string{"f.yaml:5: destinations.w.webhook.template: only used with body: template"},
		},
		{
			name: "webhook body template without template",
			doc:  "destinations:\n  w:\n    webhook:\n      url: https://example.com\n      body: template\n",
			want: []string{"f.yaml:3: destinations.w.webhook.template: required with body: template"},
		},
		// Issue #16: URL credentials never reach a validation message.
		{
			name: "segment endpoint with credentials",
			doc:  "destinations:\n  s:\n    segment:\n      write_key: k\n      endpoint: https://user:hunter2@api.segment.io\n",
			want: []string{"f.yaml:5: destinations.s.segment.endpoint: must not hold credentials (user:password@); Segment authenticates with write_key"},
		},
		{
			name: "segment endpoint with credentials and no scheme",
			doc:  "destinations:\n  s:\n    segment:\n      write_key: k\n      endpoint: user:hunter2@api.segment.io\n",
			want: []string{`f.yaml:5: destinations.s.segment.endpoint: must be an absolute http(s) URL, got "<secret>@api.segment.io"`},
		},
		{
			name: "slack api_url with credentials",
			doc:  "destinations:\n  s:\n    slack:\n      token: xoxb-1\n      channel: C1\n      api_url: https://user:hunter2@slack.example/api/\n",
			want: []string{"f.yaml:6: destinations.s.slack.api_url: must not hold credentials (user:password@); the bot authenticates with token"},
		},
		{
			name: "slack api_url with credentials and a bad scheme",
			doc:  "destinations:\n  s:\n    slack:\n      token: xoxb-1\n      channel: C1\n      api_url: ftp://user:hunter2@slack.example/api/\n",
			want: []string{`f.yaml:6: destinations.s.slack.api_url: must be an absolute http(s) URL, got "ftp://<secret>@slack.example/api/"`},
		},
		// Issue #16: a header value with CR or LF fails validate.
		{
			name: "webhook header value with a line break",
			doc:  "destinations:\n  w:\n    webhook:\n      url: https://example.com\n      headers:\n        X-Api-Key: \"k\\r\\nX-Injected: 1\"\n",
			want: []string{"f.yaml:6: destinations.w.webhook.headers.X-Api-Key: must be one line (the value contains CR or LF)"},
		},
		{
			name: "webhook header value with a line break from the environment",
			doc:  "destinations:\n  w:\n    webhook:\n      url: https://example.com\n      headers: {X-Api-Key: \"${KEY}\"}\n",
			vars: map[string]string{"KEY": "k\nX-Injected: 1"},
			want: []string{"f.yaml:5: destinations.w.webhook.headers.X-Api-Key: must be one line (the value contains CR or LF)"},
		},
		{
			name: "segment write key with a line break",
			doc:  "destinations:\n  s:\n    segment:\n      write_key: \"k\\nX: 1\"\n",
			want: []string{"f.yaml:4: destinations.s.segment.write_key: must be one line (it contains CR or LF)"},
		},
		{
			name: "slack token with a line break",
			doc:  "destinations:\n  s:\n    slack:\n      token: \"xoxb-1\\r\\nX: 1\"\n      channel: C1\n",
			want: []string{"f.yaml:4: destinations.s.slack.token: must be one line (it contains CR or LF)"},
		},
		{
			name: "file without path",
			doc:  "destinations:\n  f:\n    file: {path: \"\"}\n",
			want: []string{"f.yaml:3: destinations.f.file.path: required"},
		},
		{
			name: "route without name and destinations",
			doc:  "routes:\n  - match: {type: RENEWAL}\n",
			want: []string{
				"f.yaml:2: routes[0].name: required",
				"f.yaml:2: routes[0].to: required: list the destinations this route sends to",
			},
		},
		{
			name: "duplicate route name",
			doc:  "routes:\n  - name: r\n    to: a\n  - name: r\n    to: a" + dest,
			want: []string{`f.yaml:4: routes[1].name: duplicate route name "r" (first at line 2)`},
		},
		{
			name: "unknown destination",
			doc:  "routes:\n  - name: r\n    to: [a]\n  - name: s\n    to: [a, slak]" + dest,
			want: []string{`f.yaml:5: routes[1].to[1]: unknown destination "slak"`},
		},
		{
			name: "unknown lifecycle",
			doc:  "routes:\n  - name: r\n    match:\n      lifecycle: [renewed, renewd]\n    to: a" + dest,
			want: []string{`f.yaml:4: routes[0].match.lifecycle[1]: unknown lifecycle "renewd"; one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other`},
		},
		{
			name: "lower-case values that never match",
			doc:  "routes:\n  - name: r\n    match: {type: renewal, environment: production}\n    exclude:\n      store: promotional\n    to: a" + dest,
			want: []string{
				`f.yaml:3: routes[0].match.type[0]: "renewal" never matches: RevenueCat sends type values in upper case ("RENEWAL")`,
				`f.yaml:3: routes[0].match.environment[0]: "production" never matches: RevenueCat sends environment values in upper case ("PRODUCTION")`,
				`f.yaml:5: routes[0].exclude.store[0]: "promotional" never matches: RevenueCat sends store values in upper case ("PROMOTIONAL")`,
			},
		},
		{
			name: "empty match value",
			doc:  "routes:\n  - name: r\n    match: {entitlement: [\"\"]}\n    to: a" + dest,
			want: []string{"f.yaml:3: routes[0].match.entitlement[0]: must not be empty"},
		},
		{
			name: "globs and free-form keys",
			doc:  "routes:\n  - name: r\n    match: {type: \"PAYWALL_*\", product: \"premium:*\", app_id: app1, entitlement: Pro, country: [US, DE], period_type: TRIAL}\n    to: a" + dest,
		},
		{
			name: "when with an unknown name",
			doc:  "routes:\n  - name: r\n    to: a\n  - name: s\n    when: typ == \"RENEWAL\"\n    to: a" + dest,
			want: []string{"f.yaml:5: routes[1].when: unknown name typ (1:1)"},
		},
		{
			name: "when with mismatched types",
			doc:  "routes:\n  - name: r\n    when: price > \"50\"\n    to: a" + dest,
			want: []string{"f.yaml:3: routes[0].when: invalid operation: > (mismatched types float64 and string) (1:7)"},
		},
		{
			name: "when that is not boolean",
			doc:  "routes:\n  - name: r\n    when: price\n    to: a" + dest,
			want: []string{"f.yaml:3: routes[0].when: expected bool, but got *float64"},
		},
		{
			name: "when error placed on its line inside a block",
			doc:  "routes:\n  - name: r\n    when: |\n      type == \"RENEWAL\" &&\n        price >= 50 &&\n        currancy == \"USD\"\n    to: a" + dest,
			want: []string{"f.yaml:6: routes[0].when: unknown name currancy (3:3)"},
		},
		{name: "valid when", doc: "routes:\n  - name: r\n    when: 'price != nil && price >= 50 && \"pro\" in entitlements'\n    to: a" + dest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc + required
			if tt.whole {
				doc = tt.doc
			}
			_, err := Parse([]byte(doc), "f.yaml", env(tt.vars), testTypes())
			got := problemLines(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// fakeBlock stands for an adapter's Config with its own Validate.
type fakeBlock struct {
	URL      string `yaml:"url"`
	Template string `yaml:"template"`
}

func (*fakeBlock) Validate() destinations.Problems {
	var p destinations.Problems
	p.Add("template", "output is not valid JSON")
	p.Add("url", "required")
	p.Add("", "the block as a whole is wrong")
	return p
}

// TestBlockProblemLocation: a type's problems are placed at their key when
// the file has it, else at the nearest parent in the file (here the block);
// a block-wide problem stays quiet when a value in the block did not expand.
func TestBlockProblemLocation(t *testing.T) {
	p := newProblems("f.yaml")
	p.lines["destinations.w.fake"] = 3
	p.lines["destinations.w.fake.template"] = 5
	v := &validator{p: p}
	v.block("destinations.w.fake", &fakeBlock{})
	want := []string{
		"f.yaml:3: destinations.w.fake.url: required",
		"f.yaml:3: destinations.w.fake: the block as a whole is wrong",
		"f.yaml:5: destinations.w.fake.template: output is not valid JSON",
	}
	if got := problemLines(t, p.err()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	p = newProblems("f.yaml")
	p.lines["destinations.w.fake"] = 3
	p.unset["destinations.w.fake.url"] = true
	v = &validator{p: p}
	v.block("destinations.w.fake", &fakeBlock{})
	want = []string{"f.yaml:3: destinations.w.fake.template: output is not valid JSON"}
	if got := problemLines(t, p.err()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("with an unset value, errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTypesFromTheRegistry: a type config does not know is decoded, defaulted
// and validated through its Type alone, and "add one of …" lists the types
// it is given.
func TestTypesFromTheRegistry(t *testing.T) {
	fake := destinations.Type{
		Name:      "fake",
		Config:    func() destinations.Block { return &fakeBlock{} },
		RateLimit: 3,
	}
	types := destinations.Types{fake}
	doc := "destinations:\n  w:\n    fake:\n      url: x\n      template: y\n      nope: 1\n  empty: {}\n"
	_, err := Parse([]byte(doc+required), "f.yaml", env(nil), types)
	want := []string{
		"f.yaml:3: destinations.w.fake: the block as a whole is wrong",
		"f.yaml:4: destinations.w.fake.url: required",
		"f.yaml:5: destinations.w.fake.template: output is not valid JSON",
		"f.yaml:6: destinations.w.fake.nope: unknown key",
		"f.yaml:7: destinations.empty: no type block; add one of fake",
	}
	if got := problemLines(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The type's rate_limit default applies; the destination's own wins.
	ok := destinations.Type{Name: "ok", Config: func() destinations.Block { return &okBlock{} }, RateLimit: 3}
	doc = "destinations:\n  a:\n    ok: {url: u}\n  b:\n    ok: {}\n    rate_limit: 7\n"
	cfg, err := Parse([]byte(doc+required), "f.yaml", env(nil), destinations.Types{ok})
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Destinations["a"], cfg.Destinations["b"]
	if a.Type != "ok" || a.Block.(*okBlock).URL != "u" || a.Options.RateLimit != 3 || b.Options.RateLimit != 7 {
		t.Errorf("a = %+v, b = %+v", a, b)
	}
}

type okBlock struct {
	URL string `yaml:"url"`
}

func (*okBlock) Validate() destinations.Problems { return nil }

// TestAdapterValidateCalled runs the real webhook adapter's check through
// Parse; its wording is the adapter's, the location is ours.
func TestAdapterValidateCalled(t *testing.T) {
	doc := "destinations:\n  w:\n    webhook:\n      url: https://example.com\n      headers: {\"bad name\": x}\n"
	_, err := Parse([]byte(doc+required), "f.yaml", env(nil), testTypes())
	got := problemLines(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "f.yaml:5: destinations.w.webhook.headers: ") {
		t.Errorf("errors = %q, want one at f.yaml:5: destinations.w.webhook.headers", got)
	}
}

func TestCompileWhen(t *testing.T) {
	tests := []struct {
		src  string
		want string // ExprMessage of the error; "" when it compiles
	}{
		{src: `type == "RENEWAL"`},
		{src: `price != nil && price >= 50 && "pro" in entitlements`},
		{src: `lifecycle == "renewed" && subscriber_attributes["$email"].value endsWith "@example.org"`},
		{src: `lifecycle in ["renewed", "trial_converted"] && "renewed" == lifecycle`},
		{src: `typ == "RENEWAL"`, want: "unknown name typ (1:1)"},
		{src: `price`, want: "expected bool, but got *float64"},
		{src: `type ==`, want: "unexpected token EOF (1:7)"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := CompileWhen(tt.src)
			got := ""
			if err != nil {
				got = ExprMessage(err)
			}
			if got != tt.want {
				t.Errorf("CompileWhen(%q) error = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestWhenLifecycleRuns(t *testing.T) {
	renewal := &event.Event{Type: "RENEWAL", Lifecycle: event.Renewed}
	tests := []struct {
		src  string
		want bool
	}{
		{`lifecycle == "renewed"`, true},
		{`lifecycle != "renewed"`, false},
		{`lifecycle in ["expired", "renewed"]`, true},
		{`lifecycle == "expired"`, false},
		{`lifecycle startsWith "renew"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := CompileWhen(tt.src)
			if err != nil {
				t.Fatal(ExprMessage(err))
			}
			got, err := expr.Run(p, renewal)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}
