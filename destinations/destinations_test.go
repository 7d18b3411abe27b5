package destinations

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		outcome Outcome
		reason  Reason
	}{
		{"200 ok", 200, Delivered, ReasonNone},
		{"201 created", 201, Delivered, ReasonNone},
		{"204 no content", 204, Delivered, ReasonNone},
		{"299 last 2xx", 299, Delivered, ReasonNone},
		{"301 redirect not followed", 301, Permanent, ReasonClientError},
		{"400 bad request", 400, Permanent, ReasonClientError},
		{"401 unauthorized", 401, Permanent, ReasonClientError},
		{"404 not found", 404, Permanent, ReasonClientError},
		{"408 request timeout", 408, Retry, ReasonTimeout},
		{"410 gone", 410, Permanent, ReasonClientError},
		{"425 too early", 425, Retry, ReasonClientError},
		{"429 too many requests", 429, Retry, ReasonRateLimited},
		{"500 internal", 500, Retry, ReasonServerError},
		{"501 not implemented", 501, Permanent, ReasonServerError},
		{"502 bad gateway", 502, Retry, ReasonServerError},
		{"503 unavailable", 503, Retry, ReasonServerError},
		{"599 last 5xx", 599, Retry, ReasonServerError},
		{"100 informational", 100, Permanent, ReasonClientError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reason := Classify(tt.status)
			if out != tt.outcome || reason != tt.reason {
				t.Errorf("Classify(%d) = %q, %q; want %q, %q", tt.status, out, reason, tt.outcome, tt.reason)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"shorter than max", "hello", 10, "hello"},
		{"exactly max", "hello", 5, "hello"},
		{"one over", "hello!", 5, "hello" + TruncatedMarker},
		{"empty", "", 0, ""},
		{"max zero", "abc", 0, TruncatedMarker},
		// é is 2 bytes (c3 a9): a cut after its first byte backs off to before it.
		{"inside a 2-byte rune", "hé!", 2, "h" + TruncatedMarker},
		{"after a 2-byte rune", "hé!", 3, "hé" + TruncatedMarker},
		// € is 3 bytes; 🙂 is 4 bytes.
		{"inside a 3-byte rune", "a€b", 3, "a" + TruncatedMarker},
		{"inside a 4-byte rune, last byte", "a🙂b", 4, "a" + TruncatedMarker},
		{"after a 4-byte rune", "a🙂b", 5, "a🙂" + TruncatedMarker},
		{"first rune cut", "🙂🙂", 2, TruncatedMarker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Truncate(tt.in, tt.max); got != tt.want {
				t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestRecorder(t *testing.T) {
	if got := RecorderFrom(context.Background()); got != nil {
		t.Fatalf("RecorderFrom(background) = %v, want nil", got)
	}
	r := &Recorder{}
	ctx := WithRecorder(context.Background(), r)
	if got := RecorderFrom(ctx); got != r {
		t.Fatalf("RecorderFrom = %p, want %p", got, r)
	}

	// Concurrent Adds are safe (run with -race) and all kept.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Add(Exchange{Request: Request{URL: fmt.Sprint(i)}})
		}()
	}
	wg.Wait()
	xs := r.Exchanges()
	if len(xs) != 20 {
		t.Fatalf("len(Exchanges) = %d, want 20", len(xs))
	}
	seen := map[string]bool{}
	for _, x := range xs {
		seen[x.Request.URL] = true
	}
	if len(seen) != 20 {
		t.Errorf("distinct exchanges = %d, want 20", len(seen))
	}

	// Exchanges returns a copy: changing it does not change the recorder.
	xs[0].Request.URL = "changed"
	if r.Exchanges()[0].Request.URL == "changed" {
		t.Error("Exchanges shares its backing array with the recorder")
	}
}
