package testutil

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually asks again. Conditions are cheap reads
// (a counter, an API call on 127.0.0.1); 10 ms keeps a test quick without
// spinning a core of the shared machine.
const pollEvery = 10 * time.Millisecond

// Poll asks cond until it holds or timeout passes, and reports whether it
// held. It is for waits on a state that nothing announces (another process,
// a row in the store); a test that can receive the change on a channel or
// drive a fake clock does that instead.
func Poll(timeout time.Duration, cond func() bool) bool {
	return PollEvery(timeout, pollEvery, cond)
}

// PollEvery is Poll asking every interval, for conditions that cost more
// than a counter read (a file scan, several API calls).
func PollEvery(timeout, every time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
		}
	}
}

// Eventually is Poll that fails tb, with a message made of format and args,
// when cond does not hold within timeout.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	if !Poll(timeout, cond) {
		tb.Fatalf(format, args...)
	}
}
