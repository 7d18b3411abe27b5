// Command rcbench measures rcrouter on this machine: durable ingest against a
// minimal in-memory baseline, end-to-end fan-out against a bare send loop
// with no store (the fan-out baseline), the drain of a large backlog,
// Segment batching, rcrouter's peak memory, and its stores side by side
// (SQLite, PostgreSQL with one and with several replicas, each replica its
// own child on a fresh database, with PostgreSQL's CPU). Every server it talks to
// runs on 127.0.0.1; every run is bounded in time and count and stops by
// itself. See BENCHMARKS.md for how to read the numbers.
//
// The server under test (a baseline or rcrouter) runs as a child process
// of this binary (rcbench -child …), so its peak RSS and CPU time are its
// own and not the load generator's; the sinks and the fake Segment run in
// this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// flags are the command line of a benchmark run.
type flags struct {
	mode        string
	duration    time.Duration
	warmup      time.Duration
	conns       int
	events      int64
	backlog     int
	rounds      int
	concurrency int
	dests       int
	paused      bool
	fixture     string
	profileDir  string
	keep        bool
	drainMax    time.Duration
	store       string
	replicas    int
	pgDSN       string
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "-child" {
		return child(args[1:], stderr)
	}
	fs := flag.NewFlagSet("rcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	fs.StringVar(&f.mode, "mode", "all", "what to measure: ingest | fanout | backlog | segment | stores | all")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured window of each load run")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "load before each measured window, not counted")
	fs.IntVar(&f.conns, "conns", 32, "keep-alive connections driving the server")
	fs.Int64Var(&f.events, "events", 0, "stop a measured window after this many requests (0: only -duration)")
	fs.IntVar(&f.backlog, "backlog", 1_000_000, "pending deliveries pre-filled for -mode backlog (events × 3 destinations)")
	fs.IntVar(&f.rounds, "rounds", 2, "A B rounds of the ingest comparison (A B A B for 2)")
	fs.IntVar(&f.dests, "dests", 3, "webhook destinations rcrouter fans out to in -mode ingest and fanout (0: ingest only)")
	fs.BoolVar(&f.paused, "paused", false, "-mode ingest: pause rcrouter's destinations (deliveries are stored, not sent)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "concurrency of each rcrouter destination (0: the config default)")
	fs.StringVar(&f.fixture, "fixture", "", "RevenueCat webhook body to post (default: an embedded 1.7 KB INITIAL_PURCHASE)")
	fs.StringVar(&f.profileDir, "profile", "", "write a CPU profile of every rcrouter child into this directory")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directories (configs, databases)")
	fs.DurationVar(&f.drainMax, "drain-timeout", 10*time.Minute, "give up waiting for a queue to drain after this long")
	fs.StringVar(&f.store, "store", "sqlite", "rcrouter's store in -mode ingest and fanout: sqlite | postgres (a fresh database per run)")
	fs.IntVar(&f.replicas, "replicas", 1, "-store postgres: rcrouter replicas, each its own child; connections spread over them (-mode stores: the larger group, default 3)")
	fs.StringVar(&f.pgDSN, "pg-dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (loopback) where each run creates and drops its database")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || f.conns < 1 || f.duration <= 0 || f.rounds < 1 || f.backlog < 3 || f.dests < 0 || f.replicas < 1 ||
		(f.store != "sqlite" && f.store != "postgres") || (f.store == "sqlite" && f.replicas > 1) {
		fmt.Fprintln(stderr, "rcbench: bad usage (see -h)")
		return 2
	}
	modes := map[string][]string{
		"ingest": {"ingest"}, "fanout": {"fanout"}, "backlog": {"backlog"}, "segment": {"segment"}, "stores": {"stores"},
		"all": {"ingest", "fanout", "segment", "backlog"},
	}
	todo, ok := modes[f.mode]
	if !ok {
		fmt.Fprintf(stderr, "rcbench: unknown -mode %q\n", f.mode)
		return 2
	}
	if f.store == "postgres" && f.mode != "ingest" && f.mode != "fanout" {
		fmt.Fprintln(stderr, "rcbench: -store postgres runs with -mode ingest or fanout (-mode stores compares the stores)")
		return 2
	}
	body, err := loadFixture(f.fixture)
	if err != nil {
		fmt.Fprintln(stderr, "rcbench:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{f: f, body: body, out: stdout, log: stderr, store: storeSpec{driver: f.store, replicas: f.replicas}}
	b.header()
	for _, m := range todo {
		var err error
		switch m {
		case "ingest":
			err = b.ingest(ctx)
		case "fanout":
			err = b.fanout(ctx)
		case "segment":
			err = b.segment(ctx)
		case "backlog":
			err = b.backlogDrain(ctx)
		case "stores":
			err = b.stores(ctx)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				fmt.Fprintln(stderr, "rcbench: interrupted")
				return 1
			}
			fmt.Fprintf(stderr, "rcbench: %s: %v\n", m, err)
			return 1
		}
	}
	return 0
}

// bench holds what every mode shares.
type bench struct {
	f    flags
	body *fixture
	out  io.Writer
	log  io.Writer
	// store is the store of the rcrouter runs (-store, -replicas; -mode
	// stores sets it run by run).
	store storeSpec
}

func (b *bench) header() {
	fmt.Fprintf(b.out, "rcbench %s  cpu=%q cores=%d  conns=%d duration=%s warmup=%s body=%dB  loadavg %s\n",
		time.Now().UTC().Format(time.RFC3339), cpuModel(), numCPU(), b.f.conns, b.f.duration, b.f.warmup, b.body.size(), loadavg())
	if p50, p99, err := fsyncLatency(); err == nil {
		fmt.Fprintf(b.out, "disk: write 4 KiB + fsync in %s: p50 %s, p99 %s (200 samples)\n", os.TempDir(), us(p50), us(p99))
	}
}

// fsyncLatency times 200 rewrites of a 4 KiB block, each followed by fsync,
// in the directory the stores live in: the floor under every durable commit.
func fsyncLatency() (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp("", "rcbench-fsync-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 200)
	for i := range lat {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
