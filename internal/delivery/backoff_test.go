package delivery

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	p := Policy{InitialInterval: 5 * time.Second, MaxInterval: time.Minute}.effective(Capabilities{})
	low := func(int64) int64 { return 0 }
	high := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name    string
		attempt int
		wantCap time.Duration
	}{
		{"first failure", 1, 5 * time.Second},
		{"second doubles", 2, 10 * time.Second},
		{"fourth", 4, 40 * time.Second},
		{"fifth hits MaxInterval", 5, time.Minute},
		{"far past the cap", 60, time.Minute},
		{"no overflow at huge attempt numbers", 1 << 30, time.Minute},
		{"attempt 0 behaves as the first", 0, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.backoffCap(tc.attempt); got != tc.wantCap {
				t.Fatalf("backoffCap(%d) = %v, want %v", tc.attempt, got, tc.wantCap)
			}
			if got := p.backoff(tc.attempt, low); got != 0 {
				t.Errorf("lowest draw = %v, want 0 (full jitter starts at zero)", got)
			}
			if got := p.backoff(tc.attempt, high); got != tc.wantCap {
				t.Errorf("highest draw = %v, want the cap %v", got, tc.wantCap)
			}
		})
	}
}

func TestBackoffUnlimitedMaxIntervalDoesNotOverflow(t *testing.T) {
	p := Policy{InitialInterval: time.Hour, MaxInterval: time.Duration(1<<63 - 1)}
	if got := p.backoffCap(200); got <= 0 {
		t.Fatalf("backoffCap(200) = %v, want positive", got)
	}
}

func TestRetryWait(t *testing.T) {
	p := Policy{InitialInterval: 2 * time.Second, MaxInterval: 30 * time.Second}.effective(Capabilities{})
	mid := func(n int64) int64 { return n / 2 }
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"backoff only", 2, 0, 2 * time.Second}, // half of 4 s
		{"Retry-After longer than the draw", 1, 10 * time.Second, 10 * time.Second},
		{"draw longer than Retry-After", 4, 3 * time.Second, 8 * time.Second}, // half of 16 s
		{"Retry-After capped at MaxInterval", 1, 2 * time.Hour, 30 * time.Second},
		{"negative Retry-After ignored", 1, -time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.retryWait(tc.attempt, tc.retryAfter, mid); got != tc.want {
				t.Fatalf("retryWait(%d, %v) = %v, want %v", tc.attempt, tc.retryAfter, got, tc.want)
			}
		})
	}
}

func TestExhausted(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		at      time.Time
		want    bool
	}{
		{"under both limits", Policy{MaxAttempts: 3, MaxElapsedTime: time.Hour}, 2, created.Add(time.Minute), false},
		{"attempts used up", Policy{MaxAttempts: 3, MaxElapsedTime: time.Hour}, 3, created.Add(time.Minute), true},
		{"retry exactly at the elapsed limit", Policy{MaxElapsedTime: time.Hour}, 1, created.Add(time.Hour), false},
		{"retry past the elapsed limit", Policy{MaxElapsedTime: time.Hour}, 1, created.Add(time.Hour + time.Nanosecond), true},
		{"zero means no limit", Policy{}, 1000, created.Add(1000 * time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.exhausted(tc.attempt, created, tc.at); got != tc.want {
				t.Fatalf("exhausted = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPolicyDefaultsAndLease(t *testing.T) {
	p := Policy{}.effective(Capabilities{})
	if p.Timeout != 10*time.Second || p.Concurrency != 1 || p.InitialInterval != 5*time.Second ||
		p.MaxInterval != time.Hour || p.OpenFor != 30*time.Second || p.MaxBody != 4096 {
		t.Fatalf("defaults = %+v", p)
	}
	// The lease outlasts the longest Send by the margin the commit needs.
	if got, want := p.lease(), 3*10*time.Second+30*time.Second; got != want {
		t.Fatalf("lease = %v, want %v", got, want)
	}
	if p.lease()-p.sendBudget() != leaseMargin {
		t.Fatalf("lease %v - send budget %v != margin %v", p.lease(), p.sendBudget(), leaseMargin)
	}
}

func TestPolicyCapabilities(t *testing.T) {
	tests := []struct {
		name            string
		policy          Policy
		caps            Capabilities
		wantConcurrency int
		wantBudget      time.Duration
	}{
		{"no capabilities", Policy{Concurrency: 4, Timeout: 10 * time.Second}, Capabilities{}, 4, 30 * time.Second},
		{"a batching type runs a batch at once", Policy{Concurrency: 4}, Capabilities{Batch: 100}, 100, 30 * time.Second},
		{"options above the minimum win", Policy{Concurrency: 500}, Capabilities{Batch: 100}, 500, 30 * time.Second},
		{"a long MaxWait widens the Send budget", Policy{Timeout: time.Second}, Capabilities{MaxWait: 2 * time.Minute}, 1, 2 * time.Minute},
		{"a short MaxWait does not shrink it", Policy{Timeout: 10 * time.Second}, Capabilities{MaxWait: time.Second}, 1, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy.effective(tc.caps)
			if p.Concurrency != tc.wantConcurrency {
				t.Errorf("Concurrency = %d, want %d", p.Concurrency, tc.wantConcurrency)
			}
			if got := p.sendBudget(); got != tc.wantBudget {
				t.Errorf("sendBudget = %v, want %v", got, tc.wantBudget)
			}
			if got := p.lease(); got != tc.wantBudget+leaseMargin {
				t.Errorf("lease = %v, want %v", got, tc.wantBudget+leaseMargin)
			}
		})
	}
}

func TestTargetLease(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   time.Duration
	}{
		{"zero policy: 3×10s + margin", Target{}, 3*10*time.Second + leaseMargin},
		{"timeout", Target{Policy: Policy{Timeout: time.Minute}}, 3*time.Minute + leaseMargin},
		{"a type's longer MaxWait", Target{Policy: Policy{Timeout: time.Second}, Caps: Capabilities{MaxWait: 5 * time.Minute}},
			5*time.Minute + leaseMargin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.target.Lease(); got != tc.want {
				t.Fatalf("Lease = %v, want %v", got, tc.want)
			}
		})
	}
}
