package app

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// BenchmarkWebhook is the accept path of one webhook without the network:
// the gin handler, authorization, decode, routing to three destinations and
// the durable store (group commit, fsync on), from 64 parallel callers. The
// scheduler does not run, so no delivery competes. It reports CPU per
// webhook, which a shared machine's disk does not distort as it does ns/op.
func BenchmarkWebhook(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("..", "..", "docs", "events", "initial_purchase_paid_eur.json"))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := revenuecat.Decode(body)
	if err != nil {
		b.Fatal(err)
	}
	quoted := []byte(strconv.Quote(ev.ID))
	dir := b.TempDir()
	cfg := configHead() + `destinations:
  a: {webhook: {url: "http://127.0.0.1:9/a"}}
  b: {webhook: {url: "http://127.0.0.1:9/b"}}
  c: {webhook: {url: "http://127.0.0.1:9/c"}}
routes:
  - name: everything
    to: [a, b, c]
`
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := New(Options{ConfigPath: path, Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	h := a.Server().Handler()
	var n atomic.Int64
	cpu := webhookBenchCPU()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n.Add(1))
			req := httptest.NewRequest(http.MethodPost, "/webhooks/revenuecat",
				bytes.NewReader(bytes.Replace(body, quoted, []byte(strconv.Quote(id)), 1)))
			req.Header.Set("Authorization", hAuth)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("HTTP %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(webhookBenchCPU()-cpu)/float64(b.N)/1e3, "cpu-µs/webhook")
}

func webhookBenchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
