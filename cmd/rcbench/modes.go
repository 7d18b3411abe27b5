package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// runStats is what one run of a server under test measured.
type runStats struct {
	kind             string
	res              loadResult
	loadStart        string // /proc/loadavg when the window began
	loadEnd          string
	cpu              time.Duration // the children's CPU time in the window
	pgCPU            time.Duration // PostgreSQL's for the run's database in the window (pgCPU)
	peakRSS          int64         // the largest child's
	delivered        int64         // sink receipts in the window (messages for Segment)
	atWindowEnd      int64         // sink receipts since the start, when the window ended
	drain            time.Duration
	drained          bool
	batches          int64 // fake Segment batch requests, whole run
	messages         int64 // fake Segment messages, whole run
	receivedAfterRun int64
}

// server is how a mode sets up the server under test.
type server struct {
	kind     string   // baseline | rcrouter
	names    []string // rcrouter's destination names
	pause    bool     // pause every destination before the load
	sinks    []*sink  // destinations the server delivers to
	perEvent int      // receipts, over all its sinks, that each accepted event makes
	args     []string // child arguments
	dir      string
	store    storeSpec // rcrouter's
	db       *pgDB     // the run's PostgreSQL database, nil on SQLite
	profile  string    // CPU profile path prefix of each child ("": none)
}

func newTag() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (b *bench) tempDir(name string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "rcbench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if b.f.keep {
			fmt.Fprintf(b.log, "rcbench: kept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}, nil
}

// setupBaseline is the baseline child.
func (b *bench) setupBaseline() (*server, func(), error) {
	return &server{kind: "baseline"}, func() {}, nil
}

// setupRcrouter writes a config with one destination per block (each
// pointing at its own sink) and the child arguments to run it.
func (b *bench) setupRcrouter(name string, sinkKind func(*sink) http.HandlerFunc, path string, n int,
	block func(url string) string, perEvent int) (*server, func(), error) {
	dir, rm, err := b.tempDir(name)
	if err != nil {
		return nil, nil, err
	}
	s := &server{kind: "rcrouter", dir: dir, perEvent: perEvent, store: b.store}
	cleanup := func() {
		for _, k := range s.sinks {
			k.close()
		}
		if s.db != nil {
			if err := s.db.drop(); err != nil {
				fmt.Fprintf(b.log, "rcbench: drop database %s: %v\n", s.db.name, err)
			}
		}
		rm()
	}
	dsn := ""
	if s.store.driver == "postgres" {
		if s.db, err = createDB(context.Background(), b.f.pgDSN); err != nil {
			cleanup()
			return nil, nil, err
		}
		dsn = s.db.dsn
	}
	var names, blocks []string
	for i := range n {
		k, err := startSink(sinkKind, path)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		s.sinks = append(s.sinks, k)
		names = append(names, fmt.Sprintf("sink-%d", i+1))
		s.names = names
		blocks = append(blocks, block(k.url))
	}
	cfg, err := rcrouterConfig(dir, dsn, b.f.concurrency, names, blocks)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	s.args = []string{"-config", cfg}
	if b.f.profileDir != "" {
		s.profile = filepath.Join(b.f.profileDir, fmt.Sprintf("%s-%s-%d", name, s.store.driver, time.Now().UnixNano()))
	}
	return s, cleanup, nil
}

// drive starts the server's child, runs the load, and (when wait) waits for
// the sinks to receive everything accepted.
// Request numbers start at from, so the ids of several runs of one tag
// never repeat.
func (b *bench) drive(ctx context.Context, s *server, tag string, from uint64, wait bool) (runStats, error) {
	st := runStats{kind: s.kind}
	if s.kind == "rcrouter" {
		st.kind = s.store.String()
	}
	// Replicas start one after the other: the first migrates the database.
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop(2 * time.Minute)
		}
	}()
	var addrs []string
	for i := range max(s.store.replicas, 1) {
		args := s.args
		if s.profile != "" {
			args = append(slices.Clip(args), "-cpuprofile", fmt.Sprintf("%s-r%d.pprof", s.profile, i+1))
		}
		p, err := startChild(s.kind, args, b.log)
		if err != nil {
			return st, err
		}
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	if s.pause {
		for _, n := range s.names {
			if err := admin(addrs[0], "/api/v1/destinations/"+n+"/pause"); err != nil {
				return st, err
			}
		}
	}
	cpu := func() time.Duration {
		var sum time.Duration
		for _, p := range procs {
			sum += p.cpu()
		}
		return sum
	}
	var cpu0 time.Duration
	var pg0 map[[2]int64]time.Duration
	var got0 int64
	l := load{addrs: addrs, conns: b.f.conns, warmup: b.f.warmup, window: b.f.duration, max: b.f.events, body: b.body, tag: tag, startAt: from,
		mark: func(begin bool) {
			if begin {
				st.loadStart = loadavg()
				cpu0, got0 = cpu(), sinkTotal(s.sinks)
				if s.db != nil {
					pg0 = pgCPU(s.db.name)
				}
				return
			}
			st.cpu = cpu() - cpu0
			if s.db != nil {
				st.pgCPU = pgCPUSince(pg0, pgCPU(s.db.name))
			}
			st.atWindowEnd = sinkTotal(s.sinks)
			st.delivered = st.atWindowEnd - got0
			st.loadEnd = loadavg()
		}}
	var err error
	st.res, err = l.run(ctx)
	if err != nil {
		return st, err
	}
	if st.res.ok == 0 {
		return st, fmt.Errorf("%s: no request succeeded (first error: %s)", s.kind, st.res.firstErr)
	}
	ended := time.Now()
	if wait && s.perEvent > 0 {
		want := st.res.accepted * int64(s.perEvent)
		st.drained = waitFor(ctx, b.f.drainMax, func() bool { return sinkTotal(s.sinks) >= want })
		st.drain = time.Since(ended)
	}
	st.receivedAfterRun = sinkTotal(s.sinks)
	for _, k := range s.sinks {
		st.batches += k.batches.Load()
		st.messages += k.received.Load()
	}
	for _, p := range procs {
		peak, _, _ := p.memory()
		st.peakRSS = max(st.peakRSS, peak)
	}
	return st, ctx.Err()
}

// admin posts to rcrouter's admin API with the generated config's token.
func admin(addr, path string) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}

// waitFor polls cond every 10 ms until it holds (true) or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// ingest compares durable ingest with the baseline, A B A B: each round runs
// a fresh baseline child, then a fresh rcrouter child (new database, three
// webhook destinations on in-process sinks, delivering while it ingests).
func (b *bench) ingest(ctx context.Context) error {
	how := "delivering while it ingests"
	if b.f.paused {
		how = "paused: deliveries stored, not sent"
	}
	b.printf("\n## ingest: baseline (A) vs rcrouter on %s (B: %d webhook destinations, concurrency %s, %s), %d rounds, %d connections\n",
		b.store, b.f.dests, b.concurrencyName(), how, b.f.rounds, b.f.conns)
	b.printf("%-5s %-9s %9s %8s %8s %8s %7s %9s %11s %9s %s\n",
		"round", "server", "req/s", "p50", "p99", "max", "errors", "cpu/req", "deliv/s", "peakRSS", "loadavg start → end")
	var base, rc []float64
	tag := newTag()
	var next uint64
	for round := 1; round <= b.f.rounds; round++ {
		for _, kind := range []string{"baseline", "rcrouter"} {
			var s *server
			var cleanup func()
			var err error
			if kind == "baseline" {
				s, cleanup, err = b.setupBaseline()
			} else {
				s, cleanup, err = b.setupRcrouter("ingest", webhookSink, "/hook", b.f.dests, webhookBlock, b.f.dests)
				if s != nil {
					s.pause = b.f.paused
				}
			}
			if err != nil {
				return err
			}
			st, err := b.drive(ctx, s, tag, next, false)
			next += st.res.sent
			cleanup()
			if err != nil {
				return err
			}
			b.row(round, st)
			if kind == "baseline" {
				base = append(base, st.res.rate())
			} else {
				rc = append(rc, st.res.rate())
			}
		}
	}
	b.printRatio("ratio rcrouter/baseline", "req/s", rc, base)
	return nil
}

// printRatio prints the mean ratio of rc to base and each round's.
func (b *bench) printRatio(what, unit string, rc, base []float64) {
	mb, mr := mean(base), mean(rc)
	b.printf("%s: %.2f (mean %.0f / %.0f %s; per round:", what, mr/mb, mr, mb, unit)
	for i := range rc {
		b.printf(" %.2f", rc[i]/base[i])
	}
	b.printf(")\n")
}

func (b *bench) row(round int, st runStats) {
	r := st.res
	cpuPerReq := time.Duration(0)
	if r.ok > 0 {
		cpuPerReq = st.cpu / time.Duration(r.ok)
	}
	deliv := "-"
	if st.kind != "baseline" {
		deliv = fmt.Sprintf("%.0f", float64(st.delivered)/r.elapsed.Seconds())
	}
	b.printf("%-5d %-9s %9.0f %8s %8s %8s %7d %9s %11s %8.0fM %s → %s\n",
		round, st.kind, r.rate(), ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)),
		ms(time.Duration(r.hist.max)*time.Microsecond), r.failed, us(cpuPerReq), deliv,
		float64(st.peakRSS)/(1<<20), st.loadStart, st.loadEnd)
	if r.failed > 0 {
		b.printf("      first error: %s\n", r.firstErr)
	}
}

func (b *bench) concurrencyName() string {
	if b.f.concurrency > 0 {
		return fmt.Sprint(b.f.concurrency)
	}
	return "default"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// defaultConcurrency is rcrouter's default per-destination concurrency
// (config defaults.concurrency), which the fan-out baseline copies when
// -concurrency is not given.
const defaultConcurrency = 4

// setupFanBaseline is the fan-out baseline child with n sinks of its own.
func (b *bench) setupFanBaseline(n int) (*server, func(), error) {
	s := &server{kind: "fanbase", perEvent: n}
	cleanup := func() {
		for _, k := range s.sinks {
			k.close()
		}
	}
	conc := b.f.concurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	s.args = []string{"-concurrency", fmt.Sprint(conc)}
	for range n {
		k, err := startSink(webhookSink, "/hook")
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		s.sinks = append(s.sinks, k)
		s.args = append(s.args, "-sink", k.url)
	}
	return s, cleanup, nil
}

// fanout measures end-to-end deliveries, A B A B: the fan-out baseline (A:
// the same sinks, bodies and concurrency, sent by a bare loop with no store)
// and rcrouter (B), each ingesting under the same load while it delivers
// every event to the same number of webhook sinks. After each window it
// waits until the sinks have received every accepted event. The figure is
// rcrouter's deliveries/s in the window as a ratio to the baseline's.
func (b *bench) fanout(ctx context.Context) error {
	n := max(b.f.dests, 1)
	b.printf("\n## fanout: fan-out baseline (A: bare send loop, no store) vs rcrouter on %s (B), one event → %d webhook destinations, %d connections, concurrency %s, %d rounds\n",
		b.store, n, b.f.conns, b.concurrencyName(), b.f.rounds)
	b.printf("%-5s %-9s %9s %8s %8s %9s %9s %8s %10s %-22s %8s %s\n",
		"round", "server", "req/s", "p50", "p99", "deliv/s", "cpu/deliv", "cpu%", "behind", "after the load", "peakRSS", "loadavg start → end")
	var base, rc []float64
	for round := 1; round <= b.f.rounds; round++ {
		for _, kind := range []string{"fanbase", "rcrouter"} {
			var s *server
			var cleanup func()
			var err error
			if kind == "fanbase" {
				s, cleanup, err = b.setupFanBaseline(n)
			} else {
				s, cleanup, err = b.setupRcrouter("fanout", webhookSink, "/hook", n, webhookBlock, n)
			}
			if err != nil {
				return err
			}
			st, err := b.drive(ctx, s, newTag(), 0, true)
			cleanup()
			if err != nil {
				return err
			}
			rate := b.fanRow(round, s, st)
			if kind == "fanbase" {
				base = append(base, rate)
			} else {
				rc = append(rc, rate)
			}
		}
	}
	b.printRatio("ratio rcrouter/fan-out baseline, deliveries in the window", "/s", rc, base)
	return nil
}

// fanRow prints one fan-out run and returns its deliveries/s in the window.
func (b *bench) fanRow(round int, s *server, st runStats) float64 {
	r := st.res
	total := r.accepted * int64(s.perEvent)
	rate := float64(st.delivered) / r.elapsed.Seconds()
	status := "drained in " + st.drain.Round(time.Millisecond).String()
	if !st.drained {
		status = fmt.Sprintf("NOT drained (%d/%d)", st.receivedAfterRun, total)
	}
	b.printf("%-5d %-9s %9.0f %8s %8s %9.0f %9s %7.0f%% %10d %-22s %7.0fM %s → %s\n",
		round, st.kind, r.rate(), ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)), rate,
		us(st.cpu/time.Duration(max(st.delivered, 1))), 100*st.cpu.Seconds()/r.elapsed.Seconds(),
		max(total-st.atWindowEnd, 0), status, float64(st.peakRSS)/(1<<20), st.loadStart, st.loadEnd)
	if s.db != nil {
		b.printf("      postgres cpu/deliv %s\n", us(st.pgCPU/time.Duration(max(st.delivered, 1))))
	}
	if r.failed > 0 {
		b.printf("      first error: %s\n", r.firstErr)
	}
	return rate
}

// segment measures Segment batching: one Segment destination pointed at a
// fake Segment API, under the same load.
func (b *bench) segment(ctx context.Context) error {
	b.printf("\n## segment: one Segment destination → fake Segment, %d connections\n", b.f.conns)
	s, cleanup, err := b.setupRcrouter("segment", segmentSink, "", 1, segmentBlock, 2)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := b.drive(ctx, s, newTag(), 0, true)
	if err != nil {
		return err
	}
	r := st.res
	per := 0.0
	if st.batches > 0 {
		per = float64(st.messages) / float64(st.batches)
	}
	b.printf("ingest %.0f req/s; Segment messages in the window %.0f/s (%.0f deliveries/s); whole run: %d messages in %d batch requests = %.1f messages/batch\n",
		r.rate(), float64(st.delivered)/r.elapsed.Seconds(), float64(st.delivered)/2/r.elapsed.Seconds(), st.messages, st.batches, per)
	status := "drained"
	if !st.drained {
		status = "NOT drained"
	}
	b.printf("after the load: %s in %s; peak RSS %.0f MB; loadavg %s → %s\n",
		status, st.drain.Round(time.Millisecond), float64(st.peakRSS)/(1<<20), st.loadStart, st.loadEnd)
	return nil
}
