package revenuecat

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// goldenName is the file name of a fixture's normalized event.
func goldenName(f testutil.Fixture) string { return f.Dir + "__" + f.Name }

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
	for _, f := range testutil.Fixtures(t) {
		t.Run(goldenName(f), func(t *testing.T) {
			body := f.Body
			e, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(e.Raw, body) {
				t.Error("Raw is not the body byte for byte")
			}
			testutil.Golden(t, filepath.Join("testdata", "golden", goldenName(f)), marshalGolden(t, e), *update)
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
	testutil.Golden(t, filepath.Join("testdata", "golden", "TestEventBody.json"), indented.Bytes(), *update)
}
