// Package testutil holds the helpers that rcrouter's tests share: finding the
// module root, reading the RevenueCat fixtures kept in the repository, and
// comparing output with golden files.
//
// It is an ordinary package (tests in other packages cannot import a
// _test.go file) and it imports "testing", so only test code may import it;
// no program or library package of rcrouter does.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FixtureDirs are the fixture directories that Fixtures reads, in that order:
// the payloads composed for rcrouter from RevenueCat's schema, then the samples
// of RevenueCat's documentation.
var FixtureDirs = [...]string{"revenuecat", "revenuecat-docs"}

// fixtureDirs says where each of FixtureDirs lives, relative to the module
// root. The composed events are the ones the README's tour posts; the
// documentation samples are kept as data in this package's testdata (see its
// README for where they come from). Nothing outside the module is read: a
// fresh clone has nothing beside it.
var fixtureDirs = map[string]string{
	"revenuecat":      "docs/events",
	"revenuecat-docs": "internal/testutil/testdata/revenuecat-docs",
}

// ModuleRoot is the directory of go.mod, found by walking up from the working
// directory (a package's own directory under go test).
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FixtureDir is the directory of one of FixtureDirs.
func FixtureDir(tb testing.TB, dir string) string {
	tb.Helper()
	rel, ok := fixtureDirs[dir]
	if !ok {
		tb.Fatalf("unknown fixture directory %q (have %v)", dir, FixtureDirs)
	}
	return filepath.Join(ModuleRoot(tb), filepath.FromSlash(rel))
}

// FixturePath is the path of one fixture named "<dir>/<file>", such as
// "revenuecat/initial_purchase_paid_eur.json".
func FixturePath(tb testing.TB, name string) string {
	tb.Helper()
	dir, file, ok := strings.Cut(name, "/")
	if !ok {
		tb.Fatalf("fixture name %q is not <dir>/<file>", name)
	}
	return filepath.Join(FixtureDir(tb, dir), file)
}

// ReadFixture is the bytes of FixturePath(name).
func ReadFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(FixturePath(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Fixture is one RevenueCat webhook body of FixtureDirs.
type Fixture struct {
	Dir  string // "revenuecat" or "revenuecat-docs"
	Name string // the file name, with .json
	Path string // the full path
	Body []byte // the file's bytes, unchanged
}

// Stem is Name without .json.
func (f Fixture) Stem() string { return strings.TrimSuffix(f.Name, ".json") }

// Fixtures reads every *.json file of FixtureDirs: directory by directory, in
// the order of FixtureDirs, each sorted by name. A directory without one is
// fatal: a test that silently checked nothing would pass.
func Fixtures(tb testing.TB) []Fixture {
	tb.Helper()
	var out []Fixture
	for _, dir := range FixtureDirs {
		paths, err := filepath.Glob(filepath.Join(FixtureDir(tb, dir), "*.json"))
		if err != nil || len(paths) == 0 {
			tb.Fatalf("no fixtures in %s (%v)", FixtureDir(tb, dir), err)
		}
		sort.Strings(paths)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, Fixture{Dir: dir, Name: filepath.Base(p), Path: p, Body: b})
		}
	}
	return out
}

// Golden compares got with the file at path, or, when update is set (each
// package's -update flag), writes got there, creating the directories.
// A difference is reported with Errorf, showing the first line where got
// and the file part, with the lines before it.
func Golden(tb testing.TB, path string, got []byte, update bool) {
	tb.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs (run go test -update to accept):\n%s", path, FirstDiff(string(got), string(want)))
	}
}

// diffContext is how many equal lines FirstDiff shows before the first
// different one.
const diffContext = 3

// FirstDiff describes the first line where got and want part: its number,
// up to three equal lines before it, and both versions of it. A line that one
// side lacks is shown as <end of file>; an empty line, or lines that differ
// only in white space, are quoted so the difference shows.
func FirstDiff(got, want string) string {
	if got == want {
		return "(no difference)"
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d (got %d bytes, want %d):\n", i+1, len(got), len(want))
	for j := max(0, i-diffContext); j < i; j++ {
		fmt.Fprintf(&b, "      %s\n", g[j])
	}
	quote := i < len(g) && i < len(w) && strings.Join(strings.Fields(g[i]), " ") == strings.Join(strings.Fields(w[i]), " ")
	fmt.Fprintf(&b, " got: %s\nwant: %s", showLine(g, i, quote), showLine(w, i, quote))
	return b.String()
}

// showLine is lines[i] as FirstDiff prints it.
func showLine(lines []string, i int, quote bool) string {
	switch {
	case i >= len(lines):
		return "<end of file>"
	case quote || lines[i] == "":
		return fmt.Sprintf("%q", lines[i])
	default:
		return lines[i]
	}
}
