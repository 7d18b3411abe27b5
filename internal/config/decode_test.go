package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestStrictDecode pins the message of every kind of decode problem: each
// names the file, the line and the YAML path.
func TestStrictDecode(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// whole: doc is the entire file (nothing is appended to it).
		whole bool
		want  []string
	}{
		{
			name: "unknown top-level key",
			doc:  "sever:\n  listen: :80\n",
			want: []string{"f.yaml:1: sever: unknown key"},
		},
		{
			name: "unknown key in a destination",
			doc: `destinations:
  sales-slack:
    slak:
      webhook_url: https://hooks.slack.com/x
`,
			want: []string{
				"f.yaml:2: destinations.sales-slack: no type block; add one of segment, slack, webhook, file",
				"f.yaml:3: destinations.sales-slack.slak: unknown key",
			},
		},
		{
			name: "unknown key in a type block",
			doc:  "destinations:\n  a:\n    file: {path: x, mode: 0644}\n",
			want: []string{"f.yaml:3: destinations.a.file.mode: unknown key"},
		},
		{
			name: "unknown key in defaults.retry",
			doc:  "defaults:\n  retry:\n    attempts: 3\n",
			want: []string{"f.yaml:3: defaults.retry.attempts: unknown key"},
		},
		{
			name: "unknown key in a route",
			doc:  "routes:\n  - name: r\n    to: [a]\n    continue: true\ndestinations: {a: {file: {path: x}}}\n",
			want: []string{"f.yaml:4: routes[0].continue: unknown key"},
		},
		{
			name: "unknown match key",
			doc:  "routes:\n  - name: r\n    match: {event_type: RENEWAL}\n    to: [a]\ndestinations: {a: {file: {path: x}}}\n",
			want: []string{"f.yaml:3: routes[0].match.event_type: unknown key"},
		},
		{
			name: "duplicate key",
			doc:  "server:\n  listen: :80\n  listen: :81\n",
			want: []string{"f.yaml:3: server.listen: duplicate key (first at line 2)"},
		},
		{
			name: "string where an integer is expected",
			doc:  "defaults:\n  concurrency: many\n",
			want: []string{`f.yaml:2: defaults.concurrency: expected an integer, got "many"`},
		},
		{
			name: "fraction where an integer is expected",
			doc:  "server:\n  max_body_bytes: 1.5\n",
			want: []string{`f.yaml:2: server.max_body_bytes: expected an integer, got "1.5"`},
		},
		{
			name: "string where a number is expected",
			doc:  "defaults:\n  rate_limit: fast\n",
			want: []string{`f.yaml:2: defaults.rate_limit: expected a number, got "fast"`},
		},
		{
			name: "bad duration",
			doc:  "defaults:\n  timeout: 5 sec\n",
			want: []string{`f.yaml:2: defaults.timeout: invalid duration "5 sec" (use a number and a unit: 500ms, 10s, 5m, 1h)`},
		},
		{
			name: "duration without unit",
			doc:  "storage:\n  retention: 7\n",
			want: []string{`f.yaml:2: storage.retention: invalid duration "7" (use a number and a unit: 500ms, 10s, 5m, 1h)`},
		},
		{
			name: "not a boolean",
			doc:  "routes:\n  - name: r\n    to: [a]\n    stop: yes\ndestinations: {a: {file: {path: x}}}\n",
			want: []string{`f.yaml:4: routes[0].stop: expected true or false, got "yes"`},
		},
		{
			name: "list where a mapping is expected",
			doc:  "server:\n  - listen\n",
			want: []string{"f.yaml:1: server: expected a mapping, got a list"},
		},
		{
			name: "mapping where a string is expected",
			doc:  "server:\n  listen: {host: x}\n",
			want: []string{"f.yaml:2: server.listen: expected a string, got a mapping"},
		},
		{
			name: "mapping where a list is expected",
			doc:  "routes:\n  name: r\n",
			want: []string{"f.yaml:1: routes: expected a list, got a mapping"},
		},
		{
			name: "type block that is not a mapping",
			doc:  "destinations:\n  a:\n    segment: key-123\n",
			want: []string{`f.yaml:3: destinations.a.segment: expected a mapping, got "key-123"`},
		},
		{
			name: "scalar where a mapping is expected",
			doc:  "destinations:\n  a: file\n",
			want: []string{`f.yaml:2: destinations.a: expected a mapping, got "file"`},
		},
		{
			name: "destinations as a list",
			doc:  "destinations:\n  - archive\n",
			want: []string{"f.yaml:1: destinations: expected a mapping, got a list"},
		},
		{
			name: "list of lists where a list of strings is expected",
			doc:  "routes:\n  - name: r\n    to: [[a]]\ndestinations: {a: {file: {path: x}}}\n",
			want: []string{"f.yaml:3: routes[0].to[0]: expected a string, got a list"},
		},
		{
			name: "syntax error",
			doc:  "server:\n  listen: \"unclosed\n",
			want: []string{"f.yaml:2: found unexpected end of stream"},
		},
		{
			name: "tab indentation",
			doc:  "server:\n\tlisten: :80\n",
			want: []string{"f.yaml:2: found character that cannot start any token"},
		},
		{
			name: "two documents",
			doc:  "server: {}\n---\nserver: {}\n",
			want: []string{"f.yaml:2: a config file holds one YAML document; remove this second one"},
		},
		{
			name:  "top level is not a mapping",
			doc:   "- server\n",
			whole: true,
			want:  []string{"f.yaml:1: expected a mapping of sections (server, inbound, admin, storage, defaults, destinations, routes), got a list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc + required
			if tt.whole {
				doc = tt.doc
			}
			_, err := Parse([]byte(doc), "f.yaml", env(nil), testTypes())
			got := problemLines(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDecodeForms(t *testing.T) {
	doc := `
defaults: &defaults
  timeout: 3s
  retry: {max_attempts: 5}
destinations:
  a:
    file: {path: /tmp/a.jsonl}
    <<: *defaults
    timeout: 7s
routes:
  - name: scalar-forms
    match:
      type: RENEWAL
      lifecycle: renewed
      entitlement: [pro, plus]
    exclude: {store: PROMOTIONAL}
    to: a
    stop: true
  - name: empty-forms
    match:
    to: [a]
`
	cfg, err := Parse([]byte(doc+required), "f.yaml", env(nil), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []Route{
		{
			Name: "scalar-forms",
			Match: Matchers{
				Type: []string{"RENEWAL"}, Lifecycle: []string{"renewed"}, Entitlement: []string{"pro", "plus"},
			},
			Exclude: Matchers{Store: []string{"PROMOTIONAL"}},
			To:      []string{"a"},
			Stop:    true,
		},
		{Name: "empty-forms", To: []string{"a"}},
	}
	if !reflect.DeepEqual(cfg.Routes, wantRoutes) {
		t.Errorf("routes = %+v, want %+v", cfg.Routes, wantRoutes)
	}
	// A merge key ("<<") applies before the keys written next to it.
	o := cfg.Destinations["a"].Options
	if o.Timeout != 7*time.Second || o.Retry.MaxAttempts != 5 || o.Retry.InitialInterval != 5*time.Second {
		t.Errorf("merged options = %+v, want timeout 7s, max_attempts 5, initial_interval 5s", o)
	}
}

// TestTypedValuesFromEnvironment: a reference expands first, then the
// result is decoded as the key's type.
func TestTypedValuesFromEnvironment(t *testing.T) {
	doc := `server: {max_body_bytes: "${MAX_BODY:-2048}"}
defaults:
  timeout: ${TIMEOUT}
  rate_limit: ${RATE}
inbound: {authorization: x, allow_unauthenticated: "${OPEN:-false}"}
admin: {token: admin-token-for-tests}
`
	cfg, err := Parse([]byte(doc), "f.yaml", env(map[string]string{"TIMEOUT": "250ms", "RATE": "2.5"}), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MaxBodyBytes != 2048 || cfg.Defaults.Timeout != 250*time.Millisecond || cfg.Defaults.RateLimit != 2.5 || cfg.Inbound.AllowUnauthenticated {
		t.Errorf("got max_body_bytes %d, timeout %s, rate_limit %g, allow_unauthenticated %v; want 2048, 250ms, 2.5, false",
			cfg.Server.MaxBodyBytes, cfg.Defaults.Timeout, cfg.Defaults.RateLimit, cfg.Inbound.AllowUnauthenticated)
	}
}

// TestAliasExpansionBounded: anchors nested 8 levels deep, each merging
// the previous level 10 times, would take 10^8 visits; decoding
// stops at MaxDecodeWork with one error.
func TestAliasExpansionBounded(t *testing.T) {
	nest := func(level func(i int) string) string {
		var b strings.Builder
		b.WriteString("inbound: {authorization: x}\nadmin: {token: admin-token-for-tests}\ndestinations:\n")
		b.WriteString("  d0: &l0 {file: {path: a.jsonl}}\n")
		for i := 1; i <= 8; i++ {
			fmt.Fprintf(&b, "  d%d: &l%d %s\n", i, i, level(i))
		}
		return b.String()
	}
	ten := func(i int) string { return strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", ") }
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "merge keys",
			doc:  nest(func(i int) string { return "{<<: [" + ten(i) + "]}" }),
			want: "anchors, aliases and merge keys (<<) expand to more than 200000 values; flatten the nesting",
		},
		{
			name: "merge keys over empty mappings",
			doc: strings.Replace(nest(func(i int) string { return "{<<: [" + ten(i) + "]}" }),
				"d0: &l0 {file: {path: a.jsonl}}", "d0: &l0 {}", 1),
			want: "anchors, aliases and merge keys (<<) expand to more than 200000 values; flatten the nesting",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(tt.doc), "f.yaml", env(nil), testTypes())
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n > 5 {
				t.Errorf("%d error lines; the bound should stop decoding:\n%s", n, err)
			}
			// Generous: the bound makes it milliseconds; without it, hours.
			if took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			t.Logf("%s: %s", took.Round(time.Millisecond), strings.SplitN(err.Error(), "\n", 2)[0])
		})
	}
}
