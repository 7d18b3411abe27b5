package delivery

import (
	"testing"
	"time"
)

// breakerStep is one thing that happens to a breaker in a test script.
type breakerStep struct {
	at     time.Duration // since t0
	op     string        // "attempt": permit+begin must allow; "deny": permit must refuse; "result"
	health attemptHealth // for result
	// attempt: for result, which started attempt it belongs to (its index).
	attempt int
	want    breakerState // state after the step (zero: closed)
}

func TestBreakerScripts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fail, ok, neutral := healthFailed, healthOK, healthNeutral
	tests := []struct {
		name      string
		threshold int
		steps     []breakerStep
	}{
		{"opens at the threshold of consecutive failures", 3, []breakerStep{
			{op: "attempt", want: breakerClosed},
			{op: "result", attempt: 0, health: fail, want: breakerClosed},
			{op: "attempt", want: breakerClosed},
			{op: "result", attempt: 1, health: fail, want: breakerClosed},
			{op: "attempt", want: breakerClosed},
			{op: "result", attempt: 2, health: fail, want: breakerOpen},
			{op: "deny", at: 9 * time.Second, want: breakerOpen},
		}},
		{"success resets the count", 2, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail},
			{op: "attempt"}, {op: "result", attempt: 1, health: ok},
			{op: "attempt"}, {op: "result", attempt: 2, health: fail, want: breakerClosed},
		}},
		{"permanent and skipped neither count nor reset", 2, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail},
			{op: "attempt"}, {op: "result", attempt: 1, health: neutral},
			{op: "attempt"}, {op: "result", attempt: 2, health: fail, want: breakerOpen},
		}},
		{"half-open lets exactly one probe through; success closes", 1, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail, want: breakerOpen},
			{op: "attempt", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "deny", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "result", at: 11 * time.Second, attempt: 1, health: ok, want: breakerClosed},
			{op: "attempt", at: 11 * time.Second, want: breakerClosed},
			{op: "attempt", at: 11 * time.Second, want: breakerClosed},
		}},
		{"failed probe re-opens for another period", 1, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail, want: breakerOpen},
			{op: "attempt", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "result", at: 12 * time.Second, attempt: 1, health: fail, want: breakerOpen},
			{op: "deny", at: 21 * time.Second, want: breakerOpen},
			{op: "attempt", at: 22 * time.Second, want: breakerHalfOpen},
		}},
		{"neutral probe lets the next delivery probe", 1, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail, want: breakerOpen},
			{op: "attempt", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "result", at: 10 * time.Second, attempt: 1, health: neutral, want: breakerHalfOpen},
			{op: "attempt", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "deny", at: 10 * time.Second, want: breakerHalfOpen},
		}},
		{"late results from before opening are ignored", 2, []breakerStep{
			{op: "attempt"}, {op: "attempt"}, {op: "attempt"},
			{op: "result", attempt: 0, health: fail},
			{op: "result", attempt: 1, health: fail, want: breakerOpen},
			{op: "result", attempt: 2, health: ok, want: breakerOpen}, // started while closed
			{op: "attempt", at: 10 * time.Second, want: breakerHalfOpen},
			{op: "result", at: 10 * time.Second, attempt: 0, health: ok, want: breakerHalfOpen}, // stale again
		}},
		{"threshold 0 never opens", 0, []breakerStep{
			{op: "attempt"}, {op: "result", attempt: 0, health: fail},
			{op: "attempt"}, {op: "result", attempt: 1, health: fail},
			{op: "attempt"}, {op: "result", attempt: 2, health: fail, want: breakerClosed},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &breaker{}
			b.configure(tc.threshold, 10*time.Second)
			var gens []uint64
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "attempt":
					n, _ := b.permit(now)
					if n == 0 {
						t.Fatalf("step %d: permit refused an attempt in state %v", i, b.state)
					}
					gens = append(gens, b.begin())
				case "deny":
					if n, _ := b.permit(now); n != 0 {
						t.Fatalf("step %d: permit allowed %d in state %v, want none", i, n, b.state)
					}
				case "result":
					b.record(gens[s.attempt], s.health, now)
				}
				if b.state != s.want {
					t.Fatalf("step %d (%s): state %v, want %v", i, s.op, b.state, s.want)
				}
			}
		})
	}
}

func TestBreakerPermitReportsOpenUntil(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &breaker{}
	b.configure(1, 30*time.Second)
	b.record(b.begin(), healthFailed, t0)
	n, until := b.permit(t0.Add(time.Second))
	if n != 0 || !until.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("permit = %d until %v, want 0 until t0+30s", n, until)
	}
	// Turning the breaker off by reload closes it.
	b.configure(0, 30*time.Second)
	if n, _ := b.permit(t0.Add(time.Second)); n != -1 || b.state != breakerClosed {
		t.Fatalf("after disabling: permit %d state %v, want unlimited and closed", n, b.state)
	}
}
