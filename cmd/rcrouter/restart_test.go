package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// TestDuplicateAcrossKill posts five event ids from ten clients each at
// once, kills the process with SIGKILL as soon as the answers are in (before
// most deliveries), restarts it on the same files and posts the same ids the
// same way again. Exactly one post per id is accepted over both runs, every
// other one is a duplicate, and each id reaches the sink at least once.
func TestDuplicateAcrossKill(t *testing.T) {
	s := newRecSink(t)
	s.set(0, 50*time.Millisecond) // most deliveries are still in flight at the kill
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, s.URL())
	ids := []string{"kill-dup-1", "kill-dup-2", "kill-dup-3", "kill-dup-4", "kill-dup-5"}
	burst := func() map[string]int {
		var mu sync.Mutex
		answers := map[string]int{}
		var wg sync.WaitGroup
		for _, id := range ids {
			for c := 0; c < 10; c++ {
				wg.Add(1)
				go func(id string) {
					defer wg.Done()
					req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/revenuecat", bytes.NewReader(eventBody(id)))
					req.Header.Set("Authorization", procAuth)
					key := "no answer"
					if resp, err := http.DefaultClient.Do(req); err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						var ans struct{ Status string }
						json.Unmarshal(b, &ans)
						key = fmt.Sprintf("%d %s", resp.StatusCode, ans.Status)
					}
					mu.Lock()
					answers[key]++
					mu.Unlock()
				}(id)
			}
		}
		wg.Wait()
		return answers
	}

	p := startProc(t, "serve", "--config", cfg)
	waitReady(t, p, addr)
	first := burst()
	if err := stopProc(t, p, syscall.SIGKILL); err == nil {
		t.Fatal("process exited cleanly after SIGKILL")
	}
	if first["200 accepted"] != len(ids) || first["200 duplicate"] != 9*len(ids) {
		t.Fatalf("first burst answered %v, want %d accepted and %d duplicate", first, len(ids), 9*len(ids))
	}
	_, before, _ := s.counters()

	p2 := startProc(t, "serve", "--config", cfg)
	waitReady(t, p2, addr)
	second := burst()
	if second["200 duplicate"] != 10*len(ids) {
		t.Fatalf("after restart answered %v, want %d duplicate", second, 10*len(ids))
	}
	missing := 0
	if !testutil.Poll(20*time.Second, func() bool {
		got := s.delivered()
		missing = 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d events never reached the sink; logs:\n%s", missing, len(ids), p2.log())
	}
	// Unused connections the bursts opened would hold a graceful stop for
	// up to 5 s (net/http waits that long for a new connection's request).
	http.DefaultClient.CloseIdleConnections()
	if err := stopProc(t, p2, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	got, repeats := s.delivered(), 0
	for _, id := range ids {
		repeats += got[id] - 1
	}
	t.Logf("before the kill: %v, %d deliveries answered; after restart: %v; sink got %d events with %d repeated deliveries (at least once)",
		first, before, second, len(ids), repeats)
}
