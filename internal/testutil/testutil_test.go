package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(mod, []byte("module github.com/rcrouter/rcrouter\n")) {
		t.Errorf("%s/go.mod is not rcrouter's", root)
	}
	for _, dir := range FixtureDirs {
		d := FixtureDir(t, dir)
		if rel, err := filepath.Rel(root, d); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("FixtureDir(%q) = %s, outside the module %s", dir, d, root)
		}
	}
	if got, want := FixturePath(t, "revenuecat/test.json"), filepath.Join(root, "docs", "events", "test.json"); got != want {
		t.Errorf("FixturePath = %s, want %s", got, want)
	}
}

func TestFixtures(t *testing.T) {
	fxs := Fixtures(t)
	perDir := map[string][]string{}
	for _, f := range fxs {
		perDir[f.Dir] = append(perDir[f.Dir], f.Name)
		if f.Path != filepath.Join(FixtureDir(t, f.Dir), f.Name) {
			t.Errorf("%s/%s: Path %s", f.Dir, f.Name, f.Path)
		}
		if !strings.HasSuffix(f.Name, ".json") || f.Stem()+".json" != f.Name || strings.Contains(f.Stem(), ".json") {
			t.Errorf("%s/%s: Stem %q", f.Dir, f.Name, f.Stem())
		}
		if len(f.Body) == 0 || f.Body[0] != '{' {
			t.Errorf("%s/%s: body does not start a JSON object", f.Dir, f.Name)
		}
	}
	// The directories come in the order of FixtureDirs, each sorted.
	var order []string
	for _, f := range fxs {
		if len(order) == 0 || order[len(order)-1] != f.Dir {
			order = append(order, f.Dir)
		}
	}
	if fmt.Sprint(order) != fmt.Sprint(FixtureDirs[:]) {
		t.Errorf("directories in the order %v, want %v", order, FixtureDirs)
	}
	for dir, names := range perDir {
		if !sort.StringsAreSorted(names) {
			t.Errorf("%s not sorted: %v", dir, names)
		}
	}
}

// recorder is a testing.TB that keeps what Errorf and Fatalf report.
// Its Fatal methods end the goroutine, as the real ones do.
type recorder struct {
	testing.TB
	errors, fatals []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.fatals = append(r.fatals, fmt.Sprint(args...))
	runtime.Goexit()
}

// golden runs Golden with a recorder on its own goroutine.
func golden(t *testing.T, path string, got []byte, update bool) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Golden(r, path, got, update)
	}()
	<-done
	return r
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "out.json")

	r := golden(t, path, []byte("x\n"), false)
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "run go test -update to create it") {
		t.Errorf("missing golden file: fatals %q", r.fatals)
	}

	want := "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5\n}\n"
	if r := golden(t, path, []byte(want), true); len(r.errors)+len(r.fatals) != 0 {
		t.Fatalf("update: %q %q", r.errors, r.fatals)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != want {
		t.Fatalf("update wrote %q, %v", b, err)
	}
	if r := golden(t, path, []byte(want), false); len(r.errors)+len(r.fatals) != 0 {
		t.Errorf("same bytes: %q %q", r.errors, r.fatals)
	}

	r = golden(t, path, []byte(strings.Replace(want, `"e": 5`, `"e": 6`, 1)), false)
	if len(r.errors) != 1 || len(r.fatals) != 0 {
		t.Fatalf("mismatch: errors %q, fatals %q", r.errors, r.fatals)
	}
	for _, s := range []string{path + " differs", "run go test -update to accept", "line 6", "\"b\": 2,", "\"d\": 4,", ` got:   "e": 6`, `want:   "e": 5`} {
		if !strings.Contains(r.errors[0], s) {
			t.Errorf("mismatch report lacks %q:\n%s", s, r.errors[0])
		}
	}
	if strings.Contains(r.errors[0], `"a": 1`) {
		t.Errorf("mismatch report shows more than three lines of context:\n%s", r.errors[0])
	}
}

func TestFirstDiff(t *testing.T) {
	tests := []struct {
		got, want string
		has       []string
	}{
		{"a\nb\n", "a\nc\n", []string{"line 2", " got: b\nwant: c", "      a\n"}},
		{"a\n", "a\nb\n", []string{"line 2", ` got: ""`, "want: b"}},
		{"a\nb", "a", []string{"line 2", " got: b", "want: <end of file>"}},
		{"a\nb \n", "a\nb\n", []string{"line 2", ` got: "b "`, `want: "b"`}},
		{"first\n", "other\n", []string{"line 1", " got: first\nwant: other"}},
	}
	for _, tt := range tests {
		d := FirstDiff(tt.got, tt.want)
		for _, s := range tt.has {
			if !strings.Contains(d, s) {
				t.Errorf("FirstDiff(%q, %q) lacks %q:\n%s", tt.got, tt.want, s, d)
			}
		}
	}
}
