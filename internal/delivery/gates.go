package delivery

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// admission is a gate's answer at one instant: how many attempts may start,
// and, when none may, when to ask again and whether the deliveries already
// claimed must go back to the queue.
type admission struct {
	n int // attempts that may start: -1 no limit from this gate, else how many
	// wake, when n is 0: when the answer can change by itself; zero when
	// only an event (a probe's result, a Resume) can change it, and that
	// event pokes the worker.
	wake time.Time
	// release, when n is 0: the wait may outlast the leases of the ready
	// deliveries, so they are handed back rather than held.
	release bool
}

var admitAll = admission{n: -1}

// pauseGate answers: has an operator paused the destination? The flag is
// stored; Resume pokes the worker, so a paused worker needs no deadline.
type pauseGate struct{ paused bool }

func (g pauseGate) admit() admission {
	if g.paused {
		return admission{release: true}
	}
	return admitAll
}

// holdGate answers: has the destination asked to be left alone, and until
// when? Slack's 429 applies to the whole webhook, not to one delivery.
type holdGate struct{ until time.Time }

func (g holdGate) admit(now time.Time) admission {
	if now.Before(g.until) {
		return admission{wake: g.until, release: true}
	}
	return admitAll
}

func (g holdGate) held(now time.Time) bool { return now.Before(g.until) }

// extend holds until t if that is later than the current hold; it reports
// whether the hold grew.
func (g *holdGate) extend(t time.Time) bool {
	if !t.After(g.until) {
		return false
	}
	g.until = t
	return true
}

// rateGate answers: how many attempts may the destination's rate limit start
// now, and if none, when will the next one be allowed? It is a token bucket
// whose burst is one second's worth, at least 1: a destination limited to 1/s
// gets one request at a time, and short bursts of a faster one stay within
// the limit over any second. Tokens are taken when deliveries are claimed,
// so a claimed delivery may start as soon as a slot is free.
type rateGate struct{ lim *rate.Limiter } // nil: unlimited

// configure sets the limit (0: unlimited), keeping the bucket's level so a
// reload does not hand out a fresh burst. The bucket's clock is whatever
// time it is given: always the scheduler's, so a fake clock controls it.
func (g *rateGate) configure(perSecond float64, now time.Time) {
	if perSecond <= 0 {
		g.lim = nil
		return
	}
	burst := max(1, int(perSecond))
	if g.lim == nil {
		g.lim = rate.NewLimiter(rate.Limit(perSecond), burst)
		g.lim.SetBurstAt(now, burst) // starts its clock at now, full
		return
	}
	g.lim.SetLimitAt(now, rate.Limit(perSecond))
	g.lim.SetBurstAt(now, burst)
}

func (g rateGate) unlimited() bool { return g.lim == nil }

func (g rateGate) admit(now time.Time) admission {
	if g.lim == nil {
		return admitAll
	}
	tokens := g.lim.TokensAt(now)
	if tokens < 1 {
		// Claimed deliveries already hold their tokens: nothing to release.
		return admission{wake: now.Add(tokenWait(g.lim.Limit(), tokens))}
	}
	return admission{n: int(tokens)}
}

// take spends n tokens at now; admit said they are there.
func (g rateGate) take(now time.Time, n int) {
	if g.lim != nil {
		g.lim.ReserveN(now, n)
	}
}

// tokenWait is how long until the bucket holds one whole token, rounded up
// to a millisecond so float rounding cannot leave it a hair short.
func tokenWait(limit rate.Limit, tokens float64) time.Duration {
	secs := (1 - tokens) / float64(limit)
	ms := math.Ceil(secs * 1000)
	return max(time.Duration(ms)*time.Millisecond, time.Millisecond)
}

// gates are what a worker asks before it starts or claims: the start gates
// (pause, hold, breaker) hold back claimed deliveries too; the rate limit
// only bounds new claims, since a claim takes its tokens. Every gate is
// guarded by the worker's mutex.
type gates struct {
	pause pauseGate
	hold  holdGate
	br    breaker
	rate  rateGate
}

// start asks the start gates, in order, how many attempts may start at now.
// The breaker's answer may move it from open to half-open.
func (g *gates) start(now time.Time) admission {
	if a := g.pause.admit(); a.n == 0 {
		return a
	}
	if a := g.hold.admit(now); a.n == 0 {
		return a
	}
	n, until := g.br.permit(now)
	if n != 0 {
		return admission{n: n}
	}
	// Open: wait for the end of the open period, and hand back what the
	// worker holds. Half-open with the probe in flight: the probe's result
	// pokes the worker within one Send, which the ready leases allow for.
	return admission{wake: until, release: !until.IsZero()}
}

// clear reports, without moving any state, whether every start gate is
// wide open: the fast path an attempt takes to start the next ready delivery
// on its own goroutine.
func (g *gates) clear(now time.Time) bool {
	return !g.pause.paused && !g.hold.held(now) && g.br.state == breakerClosed
}
