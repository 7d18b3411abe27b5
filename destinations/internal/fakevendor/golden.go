package fakevendor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// Goldens sends every fixture (testutil.Fixtures) alone through send, with
// the key "golden:<name>", and compares with testdata/golden/<dir>/<name>
// what the fake received — each request as "POST <path>" and its body,
// indented — or the skip reason. A delivered event must have made one of
// the requests of paths after the other, in order, and each exchange must
// show exactly the body sent with key redacted.
func Goldens(t *testing.T, f *destinationstest.Server, key string, paths []string, update bool, send func(key string, e *event.Event) destinations.Result) {
	t.Helper()
	for _, fx := range testutil.Fixtures(t) {
		t.Run(fx.Dir+"/"+fx.Stem(), func(t *testing.T) {
			e, err := revenuecat.Decode(fx.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			before := len(f.Requests())
			res := send("golden:"+fx.Stem(), e)
			got := f.Requests()[before:]
			var out bytes.Buffer
			switch res.Outcome {
			case destinations.Skipped:
				if len(got) != 0 {
					t.Fatalf("skipped event sent %d requests", len(got))
				}
				b, _ := json.MarshalIndent(map[string]string{"skipped": res.Message, "reason": string(res.Reason)}, "", "  ")
				out.Write(b)
				out.WriteString("\n")
			case destinations.Delivered:
				if len(got) == 0 || len(got) > len(paths) || len(res.Exchanges) != len(got) {
					t.Fatalf("%d requests, %d exchanges; want 1 to %d of each", len(got), len(res.Exchanges), len(paths))
				}
				for i, r := range got {
					path := r.Path
					if r.Query != "" {
						path += "?" + r.Query
					}
					if r.Method != "POST" || path != paths[i] || r.Header.Get("Content-Type") != "application/json" {
						t.Errorf("request %d = %s %s (%s), want a JSON POST %s", i, r.Method, path, r.Header.Get("Content-Type"), paths[i])
					}
					if want := strings.ReplaceAll(string(r.Body), key, secret.Redacted); res.Exchanges[i].Request.Body != want {
						t.Errorf("exchange %d body = %s\nwant the sent body with the key redacted: %s", i, res.Exchanges[i].Request.Body, want)
					}
					fmt.Fprintf(&out, "POST %s\n", path)
					if err := json.Indent(&out, r.Body, "", "  "); err != nil {
						t.Fatal(err)
					}
					out.WriteString("\n")
				}
			default:
				t.Fatalf("outcome %s (%s): %s", res.Outcome, res.Reason, res.Message)
			}
			testutil.Golden(t, filepath.Join("testdata", "golden", fx.Dir, fx.Name), out.Bytes(), update)
		})
	}
}
