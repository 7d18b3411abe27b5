package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/testutil"
	"github.com/rcrouter/rcrouter/router"
)

// FuzzParse feeds arbitrary bytes to the config loader. Whatever the file
// holds, Parse must not panic, and it must either return a config that the
// rest of the process can use (Dump works, the router compiles its routes) or
// a *config.Errors whose every problem names this file and a line in it: an
// operator acts on "<file>:<line>: …", so a problem without a line is a bug.
//
// Run it with: go test -run '^$' -fuzz FuzzParse -fuzztime 5m ./internal/config
func FuzzParse(f *testing.F) {
	root := testutil.ModuleRoot(f)
	for _, p := range []string{
		filepath.Join(root, "config.example.yaml"),
		filepath.Join(root, "internal", "config", "testdata", "invalid.yaml"),
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A RevenueCat fixture is JSON, hence YAML of the wrong shape: the
	// loader must refuse it with lines, not choke on it.
	for _, fx := range testutil.Fixtures(f)[:2] {
		f.Add(fx.Body)
	}
	for _, s := range []string{
		"",
		"inbound: {authorization: x}\nadmin: {token: admin-token-for-tests}\n",
		"inbound: {authorization: x}\nadmin: {token: admin-token-for-tests}\ndestinations:\n  a: {file: {path: a.jsonl}}\nroutes:\n  - {name: r, to: [a], when: 'price > 1'}\n",
		"inbound: {authorization: [\"${A}\", \"${B:-}\"]}\nadmin: {token: \"$${X}\"}\n",
		"destinations: &d {a: {file: {path: x}}}\nother: *d\n",
		"destinations:\n  <<: {a: {file: {path: x}}}\n",
		"routes:\n  - name: r\n    when: |\n      price >\n    to: [x]\n",
		"a: b\n---\nc: d\n",
		"\t- x",
		"server: {listen: \"\xff\"}\n",
		"key: \x00\n",
	} {
		f.Add([]byte(s))
	}
	getenv := func(name string) (string, bool) {
		switch name {
		case "UNSET", "B":
			return "", false
		}
		return "fz-" + name, true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		cfg, err := config.Parse(data, file, getenv, app.Types())
		if err != nil {
			checkErrors(t, data, err)
			return
		}
		if _, err := cfg.Dump(); err != nil {
			t.Fatalf("a config that loaded does not dump: %v", err)
		}
		if _, err := router.Compile(cfg.Routes); err != nil {
			t.Fatalf("validation accepted routes the router cannot compile: %v", err)
		}
		for _, r := range cfg.Routes {
			for _, to := range r.To {
				if cfg.Destinations[to] == nil {
					t.Fatalf("route %q names unknown destination %q", r.Name, to)
				}
			}
		}
	})
}

// checkErrors asserts err is a *config.Errors of problems that each name
// the file and a line of it, on one line of text each.
func checkErrors(t *testing.T, data []byte, err error) {
	t.Helper()
	var es *config.Errors
	if !errors.As(err, &es) || es == nil {
		t.Fatalf("error is %T, want *config.Errors: %v", err, err)
	}
	if _, ok := err.(*config.Errors); !ok {
		t.Fatalf("error is %T wrapping *config.Errors, want it returned as is", err)
	}
	if len(*es) == 0 {
		t.Fatal("empty *config.Errors returned as an error")
	}
	lines := yamlLines(data)
	for _, e := range *es {
		if e.File != "fuzz.yaml" {
			t.Errorf("problem names file %q: %v", e.File, e)
		}
		if e.Line < 1 || e.Line > lines {
			t.Errorf("problem at line %d of a %d-line file: %q", e.Line, lines, e.Error())
		}
		if e.Message == "" || strings.Contains(e.Error(), "\n") {
			t.Errorf("problem is empty or spans lines: %q", e.Error())
		}
	}
}

// yamlLines counts lines as yaml.v3 does: LF, CR, CR LF, NEL, LS and PS
// each end one.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', 0x85, 0x2028, 0x2029:
			n++
		}
	}
	return n
}
