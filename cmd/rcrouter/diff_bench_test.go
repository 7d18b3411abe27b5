package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// BenchmarkRoutesDiff100k runs `rcrouter routes diff` as a child process
// over 100,000 stored events (RCROUTER_BENCH_EVENTS overrides the count)
// and reports its wall time and peak RSS (the child's ru_maxrss). Target
// (issue #14): under 10 s and 100 MB. The store is filled once, through
// the real Ingest, before the timer starts.
func BenchmarkRoutesDiff100k(b *testing.B) {
	n := 100_000
	if v := os.Getenv("RCROUTER_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("RCROUTER_BENCH_EVENTS=%q", v)
		}
	}
	dir := b.TempDir()
	cur := filepath.Join(dir, "current.yaml")
	head := "inbound: {allow_unauthenticated: true}\nadmin: {token: bench-admin-token-0123456789abcdef}\nstorage: {path: rc.db}\n" +
		"destinations:\n  segment: {file: {path: s.jsonl}}\n  slack: {file: {path: k.jsonl}}\n  archive: {file: {path: a.jsonl}}\nroutes:\n"
	curRoutes := "  - name: prod\n    match: {environment: PRODUCTION}\n    to: [segment]\n" +
		"  - name: wins\n    match: {type: [INITIAL_PURCHASE, RENEWAL], entitlement: pro}\n    to: [slack]\n"
	newRoutes := "  - name: prod\n    match: {environment: PRODUCTION}\n    to: [segment]\n" +
		"  - name: wins\n    match: {type: [INITIAL_PURCHASE, RENEWAL], entitlement: pro}\n    when: \"price != nil && price >= 50\"\n    to: [slack]\n" +
		"  - name: all\n    to: [archive]\n"
	for path, routes := range map[string]string{cur: curRoutes, filepath.Join(dir, "new.yaml"): newRoutes} {
		if err := os.WriteFile(path, []byte(head+routes), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	fillStore(b, filepath.Join(dir, "rc.db"), n)

	b.ResetTimer()
	var peak int64
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$", "--", "routes", "diff", "--config", cur, "--new", filepath.Join(dir, "new.yaml"), "--json")
		cmd.Env = append(os.Environ(), "RCROUTER_TEST_MAIN=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(out.String(), fmt.Sprintf(`"events": %d`, n)) {
			b.Fatalf("routes diff: exit %d (%v), want 1 with %d events\n%.500s\n%s", code, err, n, out.String(), errb.String())
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peak = max(peak, ru.Maxrss) // KiB on Linux
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/diff")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
}

// fillStore ingests n events made from a real fixture, in a week's window,
// a quarter each PRODUCTION/SANDBOX × price 10.84/99, from 32 callers so
// commits group as in production.
func fillStore(b *testing.B, path string, n int) {
	b.Helper()
	fixture := testutil.ReadFixture(b, "revenuecat/initial_purchase_paid_eur.json")
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				id := fmt.Sprintf("bench-%07d", i)
				body := bytes.Replace(fixture, []byte(`"6F1C2A9E-4B7D-4E21-9C3A-0D5E8F7A1B22"`), []byte(strconv.Quote(id)), 1)
				if i%2 == 1 {
					body = bytes.Replace(body, []byte(`"PRODUCTION"`), []byte(`"SANDBOX"`), 1)
				}
				if i%4 >= 2 {
					body = bytes.Replace(body, []byte(`"price": 10.84`), []byte(`"price": 99`), 1)
				}
				e := store.NewEvent{ID: id, Type: "INITIAL_PURCHASE", ReceivedAt: now.Add(-time.Duration(i%100_000) * 6 * time.Second), Body: body}
				if _, err := st.Ingest(b.Context(), e); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
}
