package config

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "alpha", "EMPTY": "", "COLON": "a: b", "SECRET": "s3cr3t-value"}
	tests := []struct {
		name string
		doc  string
		want string // value of key v after expansion
		errs []string
	}{
		{name: "no reference", doc: `v: plain`, want: "plain"},
		{name: "set variable", doc: `v: "${A}"`, want: "alpha"},
		{name: "inside text", doc: `v: pre-${A}-post`, want: "pre-alpha-post"},
		{name: "two references", doc: `v: ${A}/${A}`, want: "alpha/alpha"},
		{name: "default when unset", doc: `v: "${NOPE:-fallback}"`, want: "fallback"},
		{name: "default when empty", doc: `v: "${EMPTY:-fallback}"`, want: "fallback"},
		{name: "default ignored when set", doc: `v: "${A:-fallback}"`, want: "alpha"},
		{name: "empty default", doc: `v: "${NOPE:-}"`, want: ""},
		{name: "default with colon and slash", doc: `v: "${NOPE:-https://api.segment.io}"`, want: "https://api.segment.io"},
		{name: "set but empty without default", doc: `v: "${EMPTY}"`, want: ""},
		{name: "dollar dollar is a dollar", doc: `v: "pa$$word"`, want: "pa$word"},
		{name: "escaped reference", doc: `v: "$${A}"`, want: "${A}"},
		{name: "lone dollar stays", doc: `v: "$RCAnonymousID:abc$"`, want: "$RCAnonymousID:abc$"},
		{name: "value with colon stays one string", doc: `v: ${COLON}`, want: "a: b"},
		{
			name: "unset variable", doc: "x: 1\nv: \"${NOPE}\"", want: "",
			errs: []string{"f.yaml:2: v: environment variable NOPE is not set"},
		},
		{
			name: "unset variable in a literal block names its own line",
			doc:  "v: |\n  first\n  second ${NOPE}\n",
			want: "first\nsecond \n",
			errs: []string{"f.yaml:3: v: environment variable NOPE is not set"},
		},
		{
			name: "unterminated reference", doc: `v: "${A"`, want: "${A",
			errs: []string{`f.yaml:1: v: unterminated "${": missing "}"`},
		},
		{
			name: "invalid name", doc: `v: "${1A}"`, want: "",
			errs: []string{"f.yaml:1: v: invalid variable reference ${1A}: use ${NAME} or ${NAME:-default}"},
		},
		{
			name: "shell form without colon is not supported", doc: `v: "${A-x}"`, want: "",
			errs: []string{"f.yaml:1: v: invalid variable reference ${A-x}: use ${NAME} or ${NAME:-default}"},
		},
		{
			name: "sequence item", doc: "v: x\nl: [a, \"${NOPE}\"]", want: "x",
			errs: []string{"f.yaml:2: l[1]: environment variable NOPE is not set"},
		},
		{
			name: "alias expanded once", doc: "x: &a \"$$${A}\"\nv: *a", want: "$alpha",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(tt.doc), &root); err != nil {
				t.Fatal(err)
			}
			p := newProblems("f.yaml")
			x := &expander{getenv: env(vars), p: p, source: map[*yaml.Node]string{}, vars: map[string][]string{}}
			var got struct {
				V string   `yaml:"v"`
				X string   `yaml:"x"`
				L []string `yaml:"l"`
			}
			d := &decoder{p: p, x: x}
			d.decode(&root, reflect.ValueOf(&got).Elem(), "")
			if got.V != tt.want {
				t.Errorf("v = %q, want %q", got.V, tt.want)
			}
			gotErrs := problemLines(t, p.err())
			if strings.Join(gotErrs, "\n") != strings.Join(tt.errs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(gotErrs, "\n"), strings.Join(tt.errs, "\n"))
			}
		})
	}
}

func TestExpandLeavesKeysAndSequences(t *testing.T) {
	_, err := Parse([]byte(`
destinations:
  "${A}":
    webhook:
      url: https://example.com/hook
      headers: {"${A}": "${A}"}
routes:
  - name: r
    to: ["${A}"]
`+required), "f.yaml", env(map[string]string{"A": "alpha"}), testTypes())
	// The key ${A} is not expanded, so to[0] ("alpha") names no destination.
	want := []string{
		`f.yaml:3: destinations.${A}: invalid destination name "${A}": use letters, digits, "_", "." and "-"`,
		`f.yaml:9: routes[0].to[0]: unknown destination "alpha"`,
	}
	if got := problemLines(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMessagesNeverQuoteExpandedValues(t *testing.T) {
	_, err := Parse([]byte(`server: {max_body_bytes: "${SIZE}"}`+required), "f.yaml",
		env(map[string]string{"SIZE": "s3cr3t-value"}), testTypes())
	want := `f.yaml:1: server.max_body_bytes: expected an integer, got "${SIZE}"`
	if got := strings.Join(problemLines(t, err), "\n"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNoExpansionUnderUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("destinations:\n  s:\n    slak:\n      webhook_url: \"${SLACK_URL}\"\n"+required), "f.yaml", env(nil), testTypes())
	want := []string{
		"f.yaml:2: destinations.s: no type block; add one of segment, slack, webhook, file",
		"f.yaml:3: destinations.s.slak: unknown key",
	}
	if got := problemLines(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
