package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
	"github.com/rcrouter/rcrouter/router"
)

// backlogDrain pre-fills the store with -backlog pending deliveries (events
// to three destinations, as if every destination had been down), then starts
// rcrouter on it with every sink answering, and measures how fast it drains
// and its peak RSS.
func (b *bench) backlogDrain(ctx context.Context) error {
	events := (b.f.backlog + 2) / 3
	b.printf("\n## backlog: %d pending deliveries (%d events × 3 destinations) drained by rcrouter\n", events*3, events)
	s, cleanup, err := b.setupRcrouter("backlog", webhookSink, "/hook", 3, webhookBlock, 3)
	if err != nil {
		return err
	}
	defer cleanup()
	start := time.Now()
	if err := b.prefill(ctx, filepath.Join(s.dir, "rcrouter.db"), events); err != nil {
		return err
	}
	b.printf("pre-filled in %s (through the store's Ingest, group commit, fsync on)\n", time.Since(start).Round(time.Second))

	want := int64(events * 3)
	la := loadavg()
	started := time.Now()
	p, err := startChild(s.kind, s.args, b.log)
	if err != nil {
		return err
	}
	defer p.stop(2 * time.Minute)
	// Sample progress and memory every second: the rate over the middle of
	// the drain, and the resident set while it grows.
	type sample struct {
		at  time.Time
		got int64
		rss int64
	}
	var samples []sample
	deadline := started.Add(b.f.drainMax)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for sinkTotal(s.sinks) < want {
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		_, rss, _ := p.memory()
		samples = append(samples, sample{time.Now(), sinkTotal(s.sinks), rss})
	}
	got := sinkTotal(s.sinks)
	drain := time.Since(started)
	cpu := p.cpu() // the child's CPU time since it started: the whole drain
	peak, _, err := p.memory()
	if err != nil {
		return err
	}
	var maxRSS int64
	for _, sm := range samples {
		maxRSS = max(maxRSS, sm.rss)
	}
	// Steady rate: from 10% to 90% of the backlog, leaving out start-up and tail.
	var t10, t90 time.Time
	var g10, g90 int64
	for _, sm := range samples {
		if t10.IsZero() && sm.got >= want/10 {
			t10, g10 = sm.at, sm.got
		}
		if t90.IsZero() && sm.got >= want*9/10 {
			t90, g90 = sm.at, sm.got
		}
	}
	steady := "n/a"
	if !t10.IsZero() && !t90.IsZero() && t90.After(t10) {
		steady = fmt.Sprintf("%.0f/s", float64(g90-g10)/t90.Sub(t10).Seconds())
	}
	status := "drained"
	if got < want {
		status = fmt.Sprintf("NOT drained (%d of %d)", got, want)
	}
	b.printf("%s in %s: %.0f deliveries/s overall, %s from 10%% to 90%%; rcrouter CPU %s per delivery; peak RSS (VmHWM) %.0f MB; loadavg %s → %s\n",
		status, drain.Round(time.Millisecond), float64(got)/drain.Seconds(), steady, us(cpu/time.Duration(max(got, 1))),
		float64(peak)/(1<<20), la, loadavg())
	return nil
}

// prefill ingests events × 3 deliveries straight into the store, with many
// callers so group commit batches them, before rcrouter starts.
func (b *bench) prefill(ctx context.Context, path string, events int) error {
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	verdicts, _ := json.Marshal([]router.Verdict{{Name: "everything", Matched: true, Reason: "matched"}})
	tag := newTag()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= int64(events) {
					return
				}
				buf = b.body.appendBody(buf[:0], tag, uint64(n))
				_, err := st.Ingest(ctx, store.NewEvent{
					ID: string(appendID(nil, tag, uint64(n))), Type: b.body.typ, ReceivedAt: time.Now(),
					Body: buf, Routes: verdicts,
					Deliveries: []store.NewDelivery{{Destination: "sink-1", Route: "everything"},
						{Destination: "sink-2", Route: "everything"}, {Destination: "sink-3", Route: "everything"}},
				})
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("pre-fill: %w", firstErr)
	}
	return ctx.Err()
}
