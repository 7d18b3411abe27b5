package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/internal/secret"
)

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(required), "conf/rcrouter.yaml", env(nil), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("conf")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Server:  Server{Listen: "127.0.0.1:8080", WebhookPath: "/webhooks/revenuecat", MaxBodyBytes: 1048576},
		Inbound: Inbound{Authorization: []secret.Secret{"Bearer-x"}},
		Admin:   Admin{Token: "admin-token-for-tests"},
		Storage: Storage{
			Driver: "sqlite", Path: filepath.Join(dir, "data", "rcrouter.db"),
			Retention: 168 * time.Hour, DispatchBodyBytes: 4096,
		},
		Defaults: Options{
			Timeout: 10 * time.Second, Concurrency: 4, RateLimit: 0,
			Retry:          Retry{MaxAttempts: 12, InitialInterval: 5 * time.Second, MaxInterval: time.Hour, MaxElapsedTime: 72 * time.Hour},
			CircuitBreaker: CircuitBreaker{FailureThreshold: 10, OpenFor: 30 * time.Second},
		},
		Destinations: map[string]*Destination{},
		Path:         "conf/rcrouter.yaml",
		Dir:          dir,
		SHA256:       fmt.Sprintf("%x", sha256.Sum256([]byte(required))),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestMerge(t *testing.T) {
	doc := `
defaults:
  timeout: 20s
  rate_limit: 5
  retry: {max_attempts: 8, max_interval: 30m}
  circuit_breaker: {open_for: 1m}
destinations:
  plain:
    file: {path: a.jsonl}
  partial:
    webhook: {url: "https://example.com/h"}
    concurrency: 16
    retry: {initial_interval: 1s}
    circuit_breaker: {failure_threshold: 3}
  slack-default:
    slack: {webhook_url: "https://hooks.slack.com/services/x"}
  slack-own:
    slack: {token: xoxb-1, channel: "#c"}
    rate_limit: 0.5
  zero-rate:
    segment: {write_key: k}
    rate_limit: 0
`
	cfg, err := Parse([]byte(doc+required), "f.yaml", env(nil), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	def := Options{
		Timeout: 20 * time.Second, Concurrency: 4, RateLimit: 5,
		Retry:          Retry{MaxAttempts: 8, InitialInterval: 5 * time.Second, MaxInterval: 30 * time.Minute, MaxElapsedTime: 72 * time.Hour},
		CircuitBreaker: CircuitBreaker{FailureThreshold: 10, OpenFor: time.Minute},
	}
	with := func(f func(*Options)) Options {
		o := def
		f(&o)
		return o
	}
	tests := []struct {
		name string
		typ  string
		want Options
	}{
		{name: "plain", typ: "file", want: def},
		{name: "partial", typ: "webhook", want: with(func(o *Options) {
			o.Concurrency = 16
			o.Retry.InitialInterval = time.Second
			o.CircuitBreaker.FailureThreshold = 3
		})},
		{name: "slack-default", typ: "slack", want: with(func(o *Options) { o.RateLimit = 1 })},
		{name: "slack-own", typ: "slack", want: with(func(o *Options) { o.RateLimit = 0.5 })},
		{name: "zero-rate", typ: "segment", want: with(func(o *Options) { o.RateLimit = 0 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := cfg.Destinations[tt.name]
			if d == nil {
				t.Fatalf("destination %q missing", tt.name)
			}
			if d.Name != tt.name || d.Type != tt.typ {
				t.Errorf("name, type = %q, %q, want %q, %q", d.Name, d.Type, tt.name, tt.typ)
			}
			if !reflect.DeepEqual(d.Options, tt.want) {
				t.Errorf("options = %+v\nwant      %+v", d.Options, tt.want)
			}
		})
	}
	wantNames := []string{"plain", "partial", "slack-default", "slack-own", "zero-rate"}
	if !reflect.DeepEqual(cfg.Names, wantNames) {
		t.Errorf("Names = %v, want %v (file order)", cfg.Names, wantNames)
	}
}

func TestPaths(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "abs.jsonl")
	doc := `
storage: {path: state/db.sqlite}
destinations:
  rel: {file: {path: out/events.jsonl}}
  abs: {file: {path: "` + abs + `"}}
`
	cfg, err := Parse([]byte(doc+required), filepath.Join("deploy", "rcrouter.yaml"), env(nil), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("deploy")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"Dir", cfg.Dir, dir},
		{"storage.path", cfg.Storage.Path, filepath.Join(dir, "state", "db.sqlite")},
		{"relative file path", cfg.Destinations["rel"].Block.(*file.Config).Path, filepath.Join(dir, "out", "events.jsonl")},
		{"absolute file path", cfg.Destinations["abs"].Block.(*file.Config).Path, abs},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the loader created or found %s; it must not create directories", filepath.Join(dir, "state"))
	}
}

func TestAuthorizationList(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []secret.Secret
	}{
		{name: "one string", doc: `authorization: "${A}"`, want: []secret.Secret{"Bearer a"}},
		{name: "list for rotation", doc: `authorization: ["${A}", "${B}"]`, want: []secret.Secret{"Bearer a", "Bearer b"}},
		{name: "empty values dropped", doc: `authorization: ["${A}", "${NEXT:-}", ""]`, want: []secret.Secret{"Bearer a"}},
		{name: "unauthenticated", doc: "allow_unauthenticated: true", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "inbound:\n  " + tt.doc + "\nadmin: {token: admin-token-for-tests}\n"
			cfg, err := Parse([]byte(doc), "f.yaml", env(map[string]string{"A": "Bearer a", "B": "Bearer b"}), testTypes())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Inbound.Authorization, tt.want) {
				t.Errorf("authorization has %d values, want %d", len(cfg.Inbound.Authorization), len(tt.want))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing, env(nil), testTypes()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("server:\n  listen: nope\n"+required), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad, env(nil), testTypes())
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load(bad) = %T %v, want *Errors", err, err)
	}
	want := bad + `:2: server.listen: must be host:port (127.0.0.1:8080, :8080), got "nope"`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 2 || one.Path != "server.listen" {
		t.Errorf("errors.As(*Error) = %+v, want line 2 at server.listen", one)
	}
}

func TestSHA256IsOfTheBytesBeforeExpansion(t *testing.T) {
	file := []byte(required + "server:\n  replica: \"${REPLICA}\"\n")
	var sums []string
	for _, name := range []string{"rc-1", "rc-2"} {
		cfg, err := Parse(file, "rcrouter.yaml", env(map[string]string{"REPLICA": name}), testTypes())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Server.Replica != name {
			t.Fatalf("replica %q, want %q", cfg.Server.Replica, name)
		}
		sums = append(sums, cfg.SHA256)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(file)); sums[0] != want || sums[1] != want {
		t.Errorf("config_sha256 %v, want %s for both replicas", sums, want)
	}
}
