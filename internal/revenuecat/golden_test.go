package revenuecat

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// fixtureDirs are the fixture directories under <module root>/../shared/fixtures.
var fixtureDirs = [...]string{"revenuecat", "revenuecat-docs"}

type fixture struct {
	dir, name, path string
}

// golden is the file name of the fixture's normalized event.
func (f fixture) golden() string { return f.dir + "__" + f.name }

// fixtures lists every *.json file of both fixture directories, which live
// beside the module root (CI clones the repository with shared/ next to it).
func fixtures(tb testing.TB) []fixture {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
	root := filepath.Join(dir, "..", "shared", "fixtures")
	var out []fixture
	for _, d := range fixtureDirs {
		paths, err := filepath.Glob(filepath.Join(root, d, "*.json"))
		if err != nil {
			tb.Fatal(err)
		}
		if len(paths) == 0 {
			tb.Fatalf("no fixtures in %s", filepath.Join(root, d))
		}
		for _, p := range paths {
			out = append(out, fixture{dir: d, name: filepath.Base(p), path: p})
		}
	}
	return out
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkGolden compares got with testdata/golden/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readFile(t, path)
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n%s", path, firstDiff(string(got), string(want)))
	}
}

// firstDiff shows the first line where got and want part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return "(same lines, different bytes)"
}

func marshalGolden(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestDecodeGolden decodes every real and composed RevenueCat payload and
// compares the normalized event with its golden file.
func TestDecodeGolden(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.golden(), func(t *testing.T) {
			body := readFile(t, f.path)
			e, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(e.Raw, body) {
				t.Error("Raw is not the body byte for byte")
			}
			checkGolden(t, f.golden(), marshalGolden(t, e))
		})
	}
}

// TestTestEventBodyGolden pins the synthetic TEST body itself.
func TestTestEventBodyGolden(t *testing.T) {
	body := TestEventBody("rcrouter-test-0001", time.Date(2026, 2, 14, 9, 30, 0, 0, time.UTC))
	var indented bytes.Buffer
	if err := json.Indent(&indented, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	checkGolden(t, "TestEventBody.json", indented.Bytes())
}
