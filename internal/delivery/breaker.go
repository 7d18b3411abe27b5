package delivery

import "time"

// breakerState is the state of a destination's circuit breaker. The values
// are those of the rcrouter_breaker_state gauge.
type breakerState int

const (
	breakerClosed   breakerState = 0
	breakerHalfOpen breakerState = 1
	breakerOpen     breakerState = 2
)

func (s breakerState) String() string {
	switch s {
	case breakerHalfOpen:
		return "half_open"
	case breakerOpen:
		return "open"
	default:
		return "closed"
	}
}

// attemptHealth is what one attempt tells the breaker about its destination.
type attemptHealth int

const (
	// healthNeutral: Permanent and Skipped outcomes, and bodies that did not
	// decode. The destination answered (a 400 is an answer) or was never
	// asked, so these neither count as failures nor reset the count: a
	// destination failing 5xx with an occasional 400 in between is still failing.
	healthNeutral attemptHealth = iota
	// healthOK: Delivered.
	healthOK
	// healthFailed: Retry outcomes (5xx, 408, 425, 429, network, timeout).
	healthFailed
)

// breaker is a consecutive-failure circuit breaker. It opens after threshold
// retryable failures in a row, holds for openFor (no claims, no attempts),
// then lets exactly one probe through (half-open): success closes it, failure
// opens it again, a neutral result lets the next delivery probe.
//
// Every state change starts a new generation; results of attempts that began
// in an earlier generation are ignored, so a slow attempt started before the
// breaker opened cannot close it or re-open it.
//
// breaker is not safe for concurrent use; the worker's mutex guards it.
type breaker struct {
	threshold int // 0: never opens
	openFor   time.Duration

	state     breakerState
	failures  int
	openUntil time.Time
	probing   bool // half-open and the probe is in flight
	gen       uint64
}

// configure changes the thresholds (hot reload) and keeps the state, except
// that turning the breaker off closes it.
func (b *breaker) configure(threshold int, openFor time.Duration) {
	b.threshold, b.openFor = threshold, openFor
	if threshold <= 0 && b.state != breakerClosed {
		b.close()
	}
}

// permit says how many attempts may start at now: -1 no limit from the
// breaker, 1 the half-open probe, 0 none. With 0, until is when to ask again
// (the end of the open period), or zero when only the probe's result can
// change the answer.
func (b *breaker) permit(now time.Time) (n int, until time.Time) {
	switch b.state {
	case breakerOpen:
		if now.Before(b.openUntil) {
			return 0, b.openUntil
		}
		b.state = breakerHalfOpen
		b.gen++
		b.probing = false
		fallthrough
	case breakerHalfOpen:
		if b.probing {
			return 0, time.Time{}
		}
		return 1, time.Time{}
	default:
		return -1, time.Time{}
	}
}

// begin records that an attempt starts now and returns its generation.
// In half-open state that attempt is the probe.
func (b *breaker) begin() uint64 {
	if b.state == breakerHalfOpen {
		b.probing = true
	}
	return b.gen
}

// record feeds the result of an attempt that began in generation gen.
func (b *breaker) record(gen uint64, h attemptHealth, now time.Time) {
	if gen != b.gen {
		return
	}
	switch b.state {
	case breakerClosed:
		switch h {
		case healthOK:
			b.failures = 0
		case healthFailed:
			b.failures++
			if b.threshold > 0 && b.failures >= b.threshold {
				b.open(now)
			}
		}
	case breakerHalfOpen:
		b.probing = false
		switch h {
		case healthOK:
			b.close()
		case healthFailed:
			b.open(now)
		}
	}
}

func (b *breaker) open(now time.Time) {
	b.state = breakerOpen
	b.openUntil = now.Add(b.openFor)
	b.failures = 0
	b.probing = false
	b.gen++
}

func (b *breaker) close() {
	b.state = breakerClosed
	b.failures = 0
	b.probing = false
	b.gen++
}
