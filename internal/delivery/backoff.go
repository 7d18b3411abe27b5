package delivery

import (
	"math/rand/v2"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// Floors for Policy fields whose zero value means nothing sensible. They are
// not the documented defaults: internal/config applies those (`defaults:` and
// per-type ones such as Slack's rate_limit 1) before a Policy is built. The
// floors only keep a zero Policy (a test, a synthetic destination) from
// meaning "no timeout" or "retry at once forever".
const (
	floorTimeout         = 10 * time.Second
	floorInitialInterval = 5 * time.Second
	floorMaxInterval     = time.Hour
	floorOpenFor         = 30 * time.Second
)

// leaseMargin is the part of a claim's lease that no Send may use: time to
// commit the completion before the store could hand the delivery to another
// worker (PostgreSQL replicas re-claim expired leases).
const leaseMargin = 30 * time.Second

// sendBudgetFactor: one Send may take this many Timeouts, because an adapter
// may repeat a request internally (Segment's client, go-retryablehttp) and
// every such request is bounded by Timeout on its own.
const sendBudgetFactor = 3

// Policy is how the scheduler treats one destination (DESIGN §4 defaults,
// §7 delivery semantics), as its options say. Zero values mean:
// RateLimit unlimited; MaxAttempts and MaxElapsedTime no limit;
// FailureThreshold no breaker; other fields take a floor (Timeout 10 s,
// Concurrency 1, InitialInterval 5 s, MaxInterval 1 h, OpenFor 30 s,
// MaxBody destinations.DefaultMaxBody).
//
// MaxAttempts and the backoff exponent count tries (Sends), whatever number
// of requests each made; dispatch records number every real request
// (DESIGN §9), so a Send in which a client library retried twice shows three
// records but is one try.
type Policy struct {
	Timeout          time.Duration // per request; one Send gets 3×Timeout
	Concurrency      int           // attempts in flight at once
	RateLimit        float64       // attempts started per second, 0 = unlimited
	MaxAttempts      int           // dead once this many attempts failed
	InitialInterval  time.Duration // backoff cap after the first failed attempt
	MaxInterval      time.Duration // backoff and Retry-After cap
	MaxElapsedTime   time.Duration // dead when a retry would start later than created + this
	FailureThreshold int           // consecutive retryable failures that open the breaker
	OpenFor          time.Duration // how long an open breaker holds before one probe
	MaxBody          int           // request/response body bytes kept per dispatch record

	maxWait time.Duration // from Capabilities.MaxWait, set by effective
}

// Capabilities are what a destination type declares about how it must be
// scheduled, whatever its options say. The zero value asks for nothing. The
// fields are those of destinations.Capabilities (the registry of destination
// types), so the app converts one into the other.
type Capabilities struct {
	// Batch: the type's client gathers this many concurrent Sends into one
	// request (Segment), so at least that many run at once, or batches never
	// fill; the library, not the worker's slots, bounds the HTTP requests.
	Batch int
	// MaxWait is the longest one Send can take when it is longer than
	// 3×Timeout: a type whose library repeats requests (Segment's ten tries)
	// needs a longer Send deadline and lease.
	MaxWait time.Duration
}

// effective is the one place where the policy a worker runs with is
// derived: the options' Policy, floors for meaningless zero values, and the
// type's capabilities. Apply calls it for every Target.
func (p Policy) effective(c Capabilities) Policy {
	if p.Timeout <= 0 {
		p.Timeout = floorTimeout
	}
	p.Concurrency = max(p.Concurrency, c.Batch, 1)
	if p.RateLimit < 0 {
		p.RateLimit = 0
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = floorInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = floorMaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.OpenFor <= 0 {
		p.OpenFor = floorOpenFor
	}
	if p.MaxBody <= 0 {
		p.MaxBody = destinations.DefaultMaxBody
	}
	p.maxWait = max(c.MaxWait, 0)
	return p
}

// lease is how long a claim holds a delivery: longer than the longest Send
// (sendBudget) by leaseMargin, so a completion lands before the lease ends.
func (p Policy) lease() time.Duration { return p.sendBudget() + leaseMargin }

// sendBudget bounds one Send, including the requests an adapter repeats.
func (p Policy) sendBudget() time.Duration { return max(sendBudgetFactor*p.Timeout, p.maxWait) }

// backoffCap is the upper end of the full-jitter wait after attempt n (1-based):
// min(MaxInterval, InitialInterval × 2^(n−1)).
func (p Policy) backoffCap(n int) time.Duration {
	d := p.InitialInterval
	for i := 1; i < n && d < p.MaxInterval; i++ {
		if d > p.MaxInterval/2 {
			return p.MaxInterval // doubling would pass the cap (or overflow)
		}
		d *= 2
	}
	return min(d, p.MaxInterval)
}

// backoff draws the wait after attempt n uniformly from [0, backoffCap(n)]:
// full jitter, so destinations that failed together do not retry together.
// rnd returns a uniform value in [0, max).
func (p Policy) backoff(n int, rnd func(max int64) int64) time.Duration {
	c := p.backoffCap(n)
	if c <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(c) + 1))
}

// retryWait is the wait before the next attempt after attempt n failed with a
// retryable outcome: the backoff, or the destination's Retry-After when that is
// longer, capped at MaxInterval (DESIGN §7: a misbehaving Retry-After cannot
// park a delivery for days).
func (p Policy) retryWait(n int, retryAfter time.Duration, rnd func(int64) int64) time.Duration {
	return max(p.backoff(n, rnd), p.capRetryAfter(retryAfter))
}

// capRetryAfter bounds a destination's Retry-After by MaxInterval.
func (p Policy) capRetryAfter(d time.Duration) time.Duration {
	return min(max(d, 0), p.MaxInterval)
}

// exhausted reports whether a delivery whose attempt n failed must be dead
// instead of retried at `at`: attempts used up, or the retry would start after
// created + MaxElapsedTime.
func (p Policy) exhausted(n int, created, at time.Time) bool {
	if p.MaxAttempts > 0 && n >= p.MaxAttempts {
		return true
	}
	return p.MaxElapsedTime > 0 && at.After(created.Add(p.MaxElapsedTime))
}

// defaultRand is math/rand/v2's global source: safe for concurrent use.
func defaultRand(n int64) int64 { return rand.Int64N(n) }
