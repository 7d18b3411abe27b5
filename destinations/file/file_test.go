package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func mustNew(t *testing.T, path string) *Destination {
	t.Helper()
	d, err := New("archive", Config{Path: path}, destinations.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.now = func() time.Time { return t0 }
	return d
}

func delivery(key, raw string) destinations.Delivery {
	return destinations.Delivery{Key: key, Destination: "archive", Attempt: 1,
		Event: &event.Event{ID: "evt", Type: "RENEWAL", Raw: json.RawMessage(raw)}}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("file does not end with a newline: %q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestSendAppendsLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "deeper", "events.jsonl") // parents do not exist yet
	d := mustNew(t, path)

	res := d.Send(context.Background(), delivery("k1", "{\n  \"api_version\": \"1.0\",\n  \"event\": {\"id\": \"e1\", \"note\": \"a<b & c>d\"}\n}"))
	if res.Outcome != destinations.Delivered || res.Reason != destinations.ReasonNone || res.Message != "" {
		t.Fatalf("result = %+v", res)
	}
	res2 := d.Send(context.Background(), delivery("k2", `{"api_version":"1.0","event":{"id":"e2"}}`))
	if res2.Outcome != destinations.Delivered {
		t.Fatalf("second result = %+v", res2)
	}
	// Re-delivery of the same key appends again (at least once).
	res3 := d.Send(context.Background(), delivery("k1", `{"api_version":"1.0","event":{"id":"e1"}}`))
	if res3.Outcome != destinations.Delivered {
		t.Fatalf("third result = %+v", res3)
	}

	want := []string{
		`{"delivery_key":"k1","destination":"archive","written_at":"2026-03-01T12:00:00.123456789Z","event":{"api_version":"1.0","event":{"id":"e1","note":"a<b & c>d"}}}`,
		`{"delivery_key":"k2","destination":"archive","written_at":"2026-03-01T12:00:00.123456789Z","event":{"api_version":"1.0","event":{"id":"e2"}}}`,
		`{"delivery_key":"k1","destination":"archive","written_at":"2026-03-01T12:00:00.123456789Z","event":{"api_version":"1.0","event":{"id":"e1"}}}`,
	}
	got := readLines(t, path)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d =\n%s\nwant\n%s", i, got[i], want[i])
		}
		if !json.Valid([]byte(got[i])) {
			t.Errorf("line %d is not JSON", i)
		}
	}

	abs, _ := filepath.Abs(path)
	if len(res.Exchanges) != 1 {
		t.Fatalf("%d exchanges, want 1", len(res.Exchanges))
	}
	x := res.Exchanges[0]
	if x.Request.Method != "APPEND" || x.Request.URL != "file://"+abs || x.Request.Body != want[0] {
		t.Errorf("exchange request = %+v", x.Request)
	}
	if x.Response != (destinations.Response{}) || !x.Started.Equal(t0) {
		t.Errorf("exchange response %+v started %v", x.Response, x.Started)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("file mode = %v, want at most 0640", perm)
	}
}

func TestSendAppendsToAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("{\"old\":true}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	d := mustNew(t, path)
	if res := d.Send(context.Background(), delivery("k", `{"event":{}}`)); res.Outcome != destinations.Delivered {
		t.Fatalf("result = %+v", res)
	}
	got := readLines(t, path)
	if len(got) != 2 || got[0] != `{"old":true}` {
		t.Errorf("lines = %q", got)
	}
}

func TestSendConcurrentLinesNeverInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	d := mustNew(t, path)

	const n = 50
	// Lines larger than a pipe buffer or page, so interleaving would show
	// if a line were written in pieces.
	payload := strings.Repeat("x", 16<<10)
	var wg sync.WaitGroup
	results := make([]destinations.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw := fmt.Sprintf(`{"api_version":"1.0","event":{"id":"e%d","pad":"%s"}}`, i, payload)
			results[i] = d.Send(context.Background(), delivery(fmt.Sprintf("key-%d", i), raw))
		}()
	}
	wg.Wait()

	for i, res := range results {
		if res.Outcome != destinations.Delivered {
			t.Errorf("send %d: %+v", i, res.Outcome)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 128<<10), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var l struct {
			DeliveryKey string `json:"delivery_key"`
			Event       struct {
				Event struct {
					ID  string `json:"id"`
					Pad string `json:"pad"`
				} `json:"event"`
			} `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d is not JSON: %v", len(seen), err)
		}
		if l.DeliveryKey != "key-"+strings.TrimPrefix(l.Event.Event.ID, "e") || l.Event.Event.Pad != payload {
			t.Errorf("line for %s is mixed up", l.DeliveryKey)
		}
		seen[l.DeliveryKey] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Errorf("%d distinct lines, want %d", len(seen), n)
	}
}

func TestSendTruncatesTheRecordedLine(t *testing.T) {
	d := mustNew(t, filepath.Join(t.TempDir(), "events.jsonl"))
	raw := `{"event":{"pad":"` + strings.Repeat("é", 4000) + `"}}`
	res := d.Send(context.Background(), delivery("k", raw))
	if res.Outcome != destinations.Delivered {
		t.Fatalf("result = %+v", res)
	}
	body := res.Exchanges[0].Request.Body
	if !strings.HasSuffix(body, destinations.TruncatedMarker) || len(body) > destinations.DefaultMaxBody+len(destinations.TruncatedMarker) {
		t.Errorf("recorded body has %d bytes, want at most %d with the marker", len(body), destinations.DefaultMaxBody)
	}
}

func TestSendRejectsEventsWithoutJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	d := mustNew(t, path)
	tests := []struct {
		name string
		dl   destinations.Delivery
	}{
		{"no event", destinations.Delivery{Key: "k"}},
		{"empty raw", delivery("k", "")},
		{"not JSON", delivery("k", "{nope")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := d.Send(context.Background(), tt.dl)
			want := destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
				Message: `the event has no valid raw JSON to archive`}
			if res.Outcome != want.Outcome || res.Reason != want.Reason || res.Message != want.Message || len(res.Exchanges) != 0 {
				t.Errorf("result = %+v, want %+v", res, want)
			}
		})
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("file has %q, want nothing", b)
	}
}

func TestSendAfterClose(t *testing.T) {
	d := mustNew(t, filepath.Join(t.TempDir(), "events.jsonl"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	res := d.Send(context.Background(), delivery("k", `{}`))
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonServerError || res.Message != "closed" {
		t.Errorf("result = %s/%s %q", res.Outcome, res.Reason, res.Message)
	}
	if len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error != "closed" {
		t.Errorf("exchanges = %+v", res.Exchanges)
	}
}

func TestSendWriteErrorIsRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	d := mustNew(t, path)
	// Swap in a read-only handle: every write fails, as on a full or
	// read-only disk.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d.f.Close()
	d.f = ro

	res := d.Send(context.Background(), delivery("k", `{}`))
	want := `writing: write ` + path + `: bad file descriptor`
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonServerError || res.Message != want {
		t.Errorf("result = %s/%s %q, want retry/server_error %q", res.Outcome, res.Reason, res.Message, want)
	}
	if len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error != want {
		t.Errorf("exchanges = %+v", res.Exchanges)
	}
}

func TestNewErrors(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no path", Config{}, `file: path: required`},
		{"parent is a file", Config{Path: filepath.Join(blocker, "x.jsonl")},
			`file: creating directory: mkdir ` + blocker + `: not a directory`},
		{"path is a directory", Config{Path: filepath.Dir(blocker)},
			`file: open ` + filepath.Dir(blocker) + `: is a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New("archive", tt.cfg, destinations.Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("New error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestEncodeLineKeepsHTMLCharacters(t *testing.T) {
	b, err := encodeLine(line{DeliveryKey: "<k>", Event: json.RawMessage(`{"a" : "<&>"}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"delivery_key":"<k>","destination":"","written_at":"","event":{"a":"<&>"}}` + "\n"
	if !bytes.Equal(b, []byte(want)) {
		t.Errorf("line = %s, want %s", b, want)
	}
}
