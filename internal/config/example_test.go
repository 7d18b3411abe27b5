package config

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// exampleVars is what config.example.yaml needs: its two required variables.
var exampleVars = map[string]string{"RC_WEBHOOK_AUTH": "Bearer example", "RCROUTER_ADMIN_TOKEN": "example-admin-token"}

func TestExampleConfig(t *testing.T) {
	path := filepath.Join(testutil.ModuleRoot(t), "config.example.yaml")
	cfg, err := Load(path, env(exampleVars), testTypes())
	if err != nil {
		t.Fatalf("config.example.yaml is invalid:\n%v", err)
	}
	if want := []string{"archive", "segment-prod", "sales-slack", "warehouse"}; !reflect.DeepEqual(cfg.Names, want) {
		t.Errorf("destinations = %v, want %v", cfg.Names, want)
	}
	tests := []struct {
		name, typ string
		rate      float64
		attempts  int
		timeout   time.Duration
	}{
		{"archive", "file", 0, 12, 10 * time.Second},
		{"segment-prod", "segment", 0, 12, 10 * time.Second},
		{"sales-slack", "slack", 1, 12, 10 * time.Second},
		{"warehouse", "webhook", 0, 20, 5 * time.Second},
	}
	for _, tt := range tests {
		d := cfg.Destinations[tt.name]
		if d.Type != tt.typ || d.Options.RateLimit != tt.rate || d.Options.Retry.MaxAttempts != tt.attempts || d.Options.Timeout != tt.timeout {
			t.Errorf("%s: type %s, rate_limit %g, max_attempts %d, timeout %s; want %s, %g, %d, %s", tt.name,
				d.Type, d.Options.RateLimit, d.Options.Retry.MaxAttempts, d.Options.Timeout, tt.typ, tt.rate, tt.attempts, tt.timeout)
		}
	}
	if got, want := cfg.Destinations["archive"].Block.(*file.Config).Path, filepath.Join(filepath.Dir(path), "data", "events.jsonl"); got != want {
		t.Errorf("archive path = %q, want %q", got, want)
	}
	var routes []string
	for _, r := range cfg.Routes {
		routes = append(routes, r.Name)
	}
	if want := []string{"archive-everything", "production-to-segment", "pro-wins", "pro-refunds-and-billing-issues"}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
}

// TestExampleNeedsOnlyTwoVariables: without the environment, the only
// problems are the two required variables, at their lines.
func TestExampleNeedsOnlyTwoVariables(t *testing.T) {
	path := filepath.Join(testutil.ModuleRoot(t), "config.example.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ref := range []struct{ path, name string }{
		{"inbound.authorization", "RC_WEBHOOK_AUTH"},
		{"admin.token", "RCROUTER_ADMIN_TOKEN"},
	} {
		line := lineContaining(t, data, `"${`+ref.name+`}"`)
		want = append(want, "config.example.yaml:"+line+": "+ref.path+": environment variable "+ref.name+" is not set")
	}
	_, err = Parse(data, "config.example.yaml", env(nil), testTypes())
	if got := problemLines(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExampleDocumentsEveryKey: each key of the schema appears in
// config.example.yaml, as a key or in a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	collectKeys(reflect.TypeFor[document](), keys)
	var missing []string
	for k := range keys {
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(k) + `\b`).Match(data) {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not mention %v", missing)
	}
}

func collectKeys(t reflect.Type, keys map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Duration]() {
		return
	}
	for k, idx := range yamlFields(t) {
		keys[k] = true
		collectKeys(t.FieldByIndex(idx).Type, keys)
	}
}

func lineContaining(t *testing.T, data []byte, s string) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), s) {
			return strconv.Itoa(n)
		}
	}
	t.Fatalf("%s not found", s)
	return ""
}
