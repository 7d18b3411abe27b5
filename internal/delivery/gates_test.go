package delivery

import (
	"testing"
	"time"
)

func TestGatesStart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	openBreaker := func() breaker {
		b := breaker{threshold: 1, openFor: 30 * time.Second}
		b.record(b.begin(), healthFailed, t0)
		return b
	}
	probing := func() breaker {
		b := openBreaker()
		b.permit(t0.Add(time.Minute))
		b.begin()
		return b
	}
	tests := []struct {
		name      string
		g         gates
		at        time.Time
		want      admission
		wantClear bool
	}{
		{"all open", gates{}, t0, admission{n: -1}, true},
		{"paused: hand back, wait for Resume", gates{pause: pauseGate{paused: true}}, t0,
			admission{release: true}, false},
		{"held until the destination's time", gates{hold: holdGate{until: t0.Add(time.Minute)}}, t0,
			admission{wake: t0.Add(time.Minute), release: true}, false},
		{"hold over", gates{hold: holdGate{until: t0}}, t0, admission{n: -1}, true},
		{"pause wins over hold", gates{pause: pauseGate{paused: true}, hold: holdGate{until: t0.Add(time.Minute)}}, t0,
			admission{release: true}, false},
		{"breaker open until its period ends", gates{br: openBreaker()}, t0.Add(time.Second),
			admission{wake: t0.Add(30 * time.Second), release: true}, false},
		{"breaker half-open: one probe", gates{br: openBreaker()}, t0.Add(30 * time.Second),
			admission{n: 1}, false},
		{"probe in flight: wait for its result, keep the ready ones", gates{br: probing()}, t0.Add(time.Minute),
			admission{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.g.clear(tc.at); got != tc.wantClear {
				t.Errorf("clear = %v, want %v", got, tc.wantClear)
			}
			if got := tc.g.start(tc.at); got != tc.want {
				t.Errorf("start = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRateGate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var g rateGate
	if a := g.admit(t0); a != admitAll || !g.unlimited() {
		t.Fatalf("zero rate gate: %+v, want no limit", a)
	}
	g.configure(2, t0)
	if a := g.admit(t0); a.n != 2 {
		t.Fatalf("full bucket of 2/s: %+v, want 2", a)
	}
	g.take(t0, 2)
	a := g.admit(t0)
	if a.n != 0 || a.release || !a.wake.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("empty bucket: %+v, want none until +500ms, nothing released", a)
	}
	if a := g.admit(t0.Add(500 * time.Millisecond)); a.n != 1 {
		t.Fatalf("after 500ms: %+v, want 1", a)
	}
	// A reload keeps the level: no fresh burst.
	g.configure(4, t0.Add(500*time.Millisecond))
	if a := g.admit(t0.Add(500 * time.Millisecond)); a.n != 1 {
		t.Fatalf("after reload to 4/s: %+v, want the 1 token left", a)
	}
	g.configure(0, t0)
	if !g.unlimited() {
		t.Fatal("rate 0 must remove the limit")
	}
}

func TestHoldGateExtend(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var g holdGate
	if !g.extend(t0.Add(time.Minute)) || !g.extend(t0.Add(2*time.Minute)) {
		t.Fatal("a later hold must extend")
	}
	if g.extend(t0.Add(time.Minute)) {
		t.Fatal("an earlier hold must not shorten the current one")
	}
	if !g.held(t0.Add(2*time.Minute-time.Nanosecond)) || g.held(t0.Add(2*time.Minute)) {
		t.Fatal("held must end exactly at the hold's time")
	}
}
