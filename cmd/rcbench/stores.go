package main

import (
	"context"
	"fmt"
	"time"
)

// stores compares rcrouter's stores in one run, so their ratios share one
// machine state: each round runs the ingest baseline, then rcrouter on
// SQLite, on PostgreSQL with one replica and with -replicas (default 3)
// replicas, each on a fresh store, delivering every event to -dests webhook
// sinks while it ingests. Each figure is of the window: ingest req/s and its
// ratio to the round's baseline, deliveries/s, and CPU per delivery of
// rcrouter's processes and of PostgreSQL's (pgCPU). Then the issue's
// targets, checked against the means.
func (b *bench) stores(ctx context.Context) error {
	many := b.f.replicas
	if many < 2 {
		many = 3
	}
	specs := []storeSpec{{driver: "sqlite", replicas: 1}, {driver: "postgres", replicas: 1}, {driver: "postgres", replicas: many}}
	b.printf("\n## stores: baseline (A) vs rcrouter on sqlite, pg×1, pg×%d; %d webhook destinations, concurrency %s, delivering while it ingests, %d rounds, %d connections\n",
		many, b.f.dests, b.concurrencyName(), b.f.rounds, b.f.conns)
	b.printf("%-5s %-9s %9s %6s %8s %8s %7s %9s %8s %10s %10s %10s %8s %s\n",
		"round", "server", "req/s", "×base", "p50", "p99", "errors", "deliv/s", "behind", "rc cpu/dl", "pg cpu/dl", "sum cpu/dl", "peakRSS", "loadavg start → end")
	type sum struct{ ratio, deliv, cpu, pg, p99 []float64 }
	sums := make([]sum, len(specs))
	tag := newTag()
	var next uint64
	// run sets up one server (nil spec: the baseline), drives it and
	// removes it.
	run := func(spec *storeSpec) (runStats, error) {
		var s *server
		var cleanup func()
		var err error
		if spec == nil {
			s, cleanup, err = b.setupBaseline()
		} else {
			b.store = *spec
			s, cleanup, err = b.setupRcrouter("stores", webhookSink, "/hook", b.f.dests, webhookBlock, b.f.dests)
		}
		if err != nil {
			return runStats{}, err
		}
		defer cleanup()
		st, err := b.drive(ctx, s, tag, next, false)
		next += st.res.sent
		return st, err
	}
	for round := 1; round <= b.f.rounds; round++ {
		st, err := run(nil)
		if err != nil {
			return err
		}
		base := st.res.rate()
		b.storeRow(round, st, base)
		for i := range specs {
			st, err := run(&specs[i])
			if err != nil {
				return err
			}
			b.storeRow(round, st, base)
			d := float64(max(st.delivered, 1))
			sums[i].ratio = append(sums[i].ratio, st.res.rate()/base)
			sums[i].deliv = append(sums[i].deliv, float64(st.delivered)/st.res.elapsed.Seconds())
			sums[i].cpu = append(sums[i].cpu, float64(st.cpu/time.Microsecond)/d)
			sums[i].pg = append(sums[i].pg, float64(st.pgCPU/time.Microsecond)/d)
			sums[i].p99 = append(sums[i].p99, float64(st.res.hist.quantile(0.99))/float64(time.Millisecond))
		}
	}
	b.printf("means over the rounds:\n")
	for i, spec := range specs {
		m := sums[i]
		b.printf("  %-7s ingest %.2f× baseline, worst p99 %.2fms, %.0f deliveries/s, CPU per delivery rcrouter %.0fµs + postgres %.0fµs = %.0fµs\n",
			spec, mean(m.ratio), maxOf(m.p99), mean(m.deliv), mean(m.cpu), mean(m.pg), mean(m.cpu)+mean(m.pg))
	}
	lite, one, all := sums[0], sums[1], sums[2]
	check := func(ok bool, format string, args ...any) {
		verdict := "holds"
		if !ok {
			verdict = "DOES NOT HOLD"
		}
		b.printf("  target %-64s %s\n", fmt.Sprintf(format, args...), verdict)
	}
	b.printf("targets:\n")
	check(mean(one.ratio) >= 0.3, "pg×1 ingest ≥ 0.3× baseline: %.2f×", mean(one.ratio))
	check(maxOf(one.p99) < 30, "pg×1 p99 < 30 ms: %.2fms", maxOf(one.p99))
	check(mean(one.deliv) >= mean(lite.deliv), "pg×1 deliveries/s ≥ sqlite: %.0f vs %.0f", mean(one.deliv), mean(lite.deliv))
	check(mean(all.ratio) >= mean(one.ratio), "pg×%d ingest ≥ pg×1: %.2f× vs %.2f×", many, mean(all.ratio), mean(one.ratio))
	check(mean(all.deliv) >= mean(one.deliv), "pg×%d deliveries/s ≥ pg×1: %.0f vs %.0f", many, mean(all.deliv), mean(one.deliv))
	liteCPU := mean(lite.cpu) + mean(lite.pg)
	for _, c := range []struct {
		name string
		m    sum
	}{{"pg×1", one}, {fmt.Sprintf("pg×%d", many), all}} {
		pgc := mean(c.m.cpu) + mean(c.m.pg)
		check(pgc <= 1.5*liteCPU, "%s rcrouter+postgres CPU/delivery ≤ 1.5× sqlite: %.2f×", c.name, pgc/liteCPU)
	}
	return nil
}

// storeRow prints one run of -mode stores.
func (b *bench) storeRow(round int, st runStats, base float64) {
	r := st.res
	deliv, behind, rc, pg, all := "-", "-", "-", "-", "-"
	if st.kind != "baseline" {
		d := time.Duration(max(st.delivered, 1))
		deliv = fmt.Sprintf("%.0f", float64(st.delivered)/r.elapsed.Seconds())
		behind = fmt.Sprint(max(r.accepted*int64(b.f.dests)-st.atWindowEnd, 0))
		rc, pg, all = us(st.cpu/d), us(st.pgCPU/d), us((st.cpu+st.pgCPU)/d)
	}
	b.printf("%-5d %-9s %9.0f %5.2f× %8s %8s %7d %9s %8s %10s %10s %10s %7.0fM %s → %s\n",
		round, st.kind, r.rate(), r.rate()/base, ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)), r.failed,
		deliv, behind, rc, pg, all, float64(st.peakRSS)/(1<<20), st.loadStart, st.loadEnd)
	if r.failed > 0 {
		b.printf("      first error: %s\n", r.firstErr)
	}
}

func maxOf(xs []float64) float64 {
	var m float64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
