package clock

import (
	"context"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeAdvanceFiresDueTimers(t *testing.T) {
	tests := []struct {
		name    string
		timers  []time.Duration
		advance time.Duration
		fired   []bool // per timer: must have fired
	}{
		{"none due", []time.Duration{2 * time.Second}, time.Second, []bool{false}},
		{"exactly due", []time.Duration{time.Second}, time.Second, []bool{true}},
		{"all due, made out of order", []time.Duration{3 * time.Second, time.Second, 2 * time.Second}, 5 * time.Second, []bool{true, true, true}},
		{"same deadline", []time.Duration{time.Second, time.Second}, time.Second, []bool{true, true}},
		{"partial", []time.Duration{time.Second, 10 * time.Second}, 2 * time.Second, []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(t0)
			var timers []Timer
			for _, d := range tc.timers {
				timers = append(timers, f.NewTimer(d))
			}
			f.Advance(tc.advance)
			pending := 0
			for i, tm := range timers {
				select {
				case at := <-tm.C():
					if !tc.fired[i] {
						t.Errorf("timer %d (%v) fired after Advance(%v)", i, tc.timers[i], tc.advance)
					}
					if want := t0.Add(tc.timers[i]); !at.Equal(want) {
						t.Errorf("timer %d sent %v, want its deadline %v", i, at, want)
					}
				default:
					pending++
					if tc.fired[i] {
						t.Errorf("timer %d (%v) did not fire after Advance(%v)", i, tc.timers[i], tc.advance)
					}
				}
			}
			if got, want := f.Now(), t0.Add(tc.advance); !got.Equal(want) {
				t.Errorf("Now() = %v, want %v", got, want)
			}
			if got := f.Timers(); got != pending {
				t.Errorf("Timers() = %d, want %d", got, pending)
			}
		})
	}
}

func TestFakeTimerStopAndReset(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if tm.Stop() {
		t.Fatal("second Stop reported true")
	}
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported it pending")
	}
	f.Advance(time.Second)
	select {
	case at := <-tm.C():
		if want := t0.Add(3 * time.Second); !at.Equal(want) {
			t.Fatalf("reset timer sent %v, want %v", at, want)
		}
	default:
		t.Fatal("reset timer did not fire")
	}
	if got := f.After(0); len(got) != 1 {
		t.Fatal("After(0) did not fire at once")
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	parked := make(chan struct{})
	go func() {
		defer close(parked)
		<-f.After(time.Minute)
	}()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("BlockUntil: %v", err)
	}
	f.Advance(time.Minute)
	<-parked

	// A goroutine that replaces its timer: the mark tells the new one apart.
	old := f.NewTimer(time.Hour)
	mark := f.Created()
	kick := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-kick
		old.Stop()
		<-f.After(time.Second)
	}()
	if err := f.BlockUntil(ctx, 1); err != nil { // satisfied by the old timer
		t.Fatalf("BlockUntil: %v", err)
	}
	close(kick)
	if err := f.BlockUntilCreated(ctx, mark, 1); err != nil {
		t.Fatalf("BlockUntilCreated: %v", err)
	}
	if got := f.Timers(); got != 1 {
		t.Fatalf("Timers() = %d after the goroutine replaced its timer, want 1", got)
	}
	f.Advance(time.Second)
	<-done

	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := f.BlockUntil(short, 5); err == nil {
		t.Fatal("BlockUntil with a done context returned nil")
	}
}

func TestRealClock(t *testing.T) {
	c := Real()
	start := c.Now()
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if tm.Stop() {
		t.Fatal("Stop after firing reported pending")
	}
	<-c.After(time.Millisecond)
	if !c.Now().After(start) {
		t.Fatal("real clock did not move")
	}
}
