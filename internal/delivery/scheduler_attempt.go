package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/store"
)

// attempt is one claimed delivery on its way through Send and the store.
type attempt struct {
	d          store.Delivery
	target     Target // adapter and policy at claim time: a reload does not change it
	gen        uint64 // breaker generation at start
	leaseUntil time.Time
	sharedGen  int64 // the shared breaker's generation at claim time
	probe      bool  // the shared breaker's half-open probe
	abandoned  bool  // guarded by Scheduler.inflightMu: shutdown released it
}

// finished is what the worker learns from one attempt.
type finished struct {
	gen       uint64
	health    attemptHealth
	at        time.Time        // when Send returned
	retryAt   time.Time        // when the delivery is due again (Retrying, committed)
	holdUntil time.Time        // the destination asked to hold everything until then
	records   []store.Dispatch // committed records, ids set; nil when the commit failed
}

// attempt runs one claimed delivery and reports to its worker, then runs
// the next ready delivery of the same worker, if any may start, on the same
// goroutine. If shutdown abandons an attempt while Send runs, its result is
// dropped: the delivery was released and will be attempted again.
func (s *Scheduler) attempt(ctx context.Context, w *worker, a *attempt) {
	for a != nil {
		c, f := s.execute(ctx, a)

		s.inflightMu.Lock()
		if a.abandoned {
			s.inflightMu.Unlock()
			return
		}
		delete(s.inflight, a.d.ID)
		s.inflightMu.Unlock()

		s.sent(w, f)
		s.commits.submit(c, s.committed(w, a, c, f))
		s.shareResult(ctx, w, a, f)
		a = s.next(w)
	}
	w.poke() // a slot is free
}

// committed returns what the committer calls once the completion of a is
// written, or failed to be.
func (s *Scheduler) committed(w *worker, a *attempt, c store.Completion, f finished) func(error) {
	return func(err error) {
		defer s.work.Done()
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			// Another claim took the delivery over after our lease ended:
			// its holder attempts it again and records that, so this
			// attempt's result is dropped (the vendor may have seen it
			// twice; DESIGN §8).
			s.log.Warn("attempt outlived its lease; result not recorded", "destination", a.target.Name,
				"event_id", a.d.EventID, "delivery_id", a.d.ID, "attempt", a.d.Attempts+1)
			f.retryAt, f.records = time.Time{}, nil
		case err != nil:
			// The delivery stays leased; it is claimed again when the lease
			// ends (or released at the next start), so the attempt repeats:
			// at least once.
			s.log.Error("record attempt", "destination", a.target.Name, "event_id", a.d.EventID,
				"err", fmt.Errorf("complete delivery %s of %s, attempt %d: %w", a.d.ID, a.target.Name, a.d.Attempts+1, err))
			f.retryAt, f.records = time.Time{}, nil
		default:
			f.records = c.Dispatches // the store set their ids in place
		}
		s.finish(w, f)
	}
}

// execute decodes, sends and turns the result into a completion (DESIGN §7).
func (s *Scheduler) execute(ctx context.Context, a *attempt) (store.Completion, finished) {
	d, t := a.d, a.target
	pol := t.Policy
	first := d.Attempts + 1
	start := s.clock.Now()

	ev, err := s.decoded.get(d.EventID, d.Body)
	if err != nil {
		// A stored body that no longer decodes never will: dead at once,
		// with the reason in the dispatch log. The destination was not asked,
		// so the breaker does not hear of it.
		err = fmt.Errorf("destination %s: attempt %d: decode event %s: %w", t.Name, first, d.EventID, err)
		s.log.Error("delivery dead", "destination", t.Name, "event_id", d.EventID, "attempt", first, "err", err)
		s.metrics.attempt(t.Name, string(destinations.Permanent), string(destinations.ReasonRejected), -1)
		msg := destinations.Truncate(err.Error(), pol.MaxBody)
		rec := s.record(a, first, store.Dead, start, 0)
		rec.Response.Error = msg
		return store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Dead, LastError: msg, FinishedAt: start,
				Dispatches: []store.Dispatch{rec}},
			finished{gen: a.gen, health: healthNeutral, at: start}
	}

	budget := a.leaseUntil.Add(-leaseMargin).Sub(start)
	if budget <= 0 {
		budget = pol.Timeout
	}
	sendCtx, cancel := context.WithTimeout(ctx, budget)
	res := s.send(sendCtx, t, destinations.Delivery{
		ID:          d.ID,
		Key:         DeliveryKey(d.EventID, t.Name),
		Destination: t.Name,
		Attempt:     first,
		Event:       ev,
	})
	cancel()
	end := s.clock.Now()

	n := max(1, len(res.Exchanges))
	last := first + n - 1
	outcome := normalOutcome(res.Outcome)
	f := finished{gen: a.gen, at: end}
	c := store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, FinishedAt: end}
	switch outcome {
	case destinations.Delivered:
		c.State, f.health = store.Delivered, healthOK
	case destinations.Skipped:
		c.State = store.Skipped
	case destinations.Permanent:
		c.State = store.Dead
	default:
		f.health = healthFailed
		// The backoff and max_attempts count tries, not requests: a client
		// library's internal burst (Segment's ten) is one try.
		try := d.Tries + 1
		wait := pol.retryWait(try, res.RetryAfter, s.rand)
		if at := end.Add(wait); pol.exhausted(try, d.CreatedAt, at) {
			c.State = store.Dead
		} else {
			c.State, c.NextAttemptAt = store.Retrying, at
			f.retryAt = at
		}
		if res.PauseDestination {
			// Slack's 429 applies to the whole webhook: hold every delivery
			// of the destination, not only this one.
			hold := pol.capRetryAfter(res.RetryAfter)
			if hold == 0 {
				hold = wait
			}
			f.holdUntil = end.Add(hold)
		}
	}
	if c.State != store.Delivered {
		c.LastError = destinations.Truncate(errorText(res), pol.MaxBody)
	}
	c.Dispatches = s.records(a, res, c.State, c.NextAttemptAt, start, end.Sub(start))
	s.count(t.Name, res, outcome, end.Sub(start))
	s.logResult(a, c, res, first, last)
	return c, f
}

// send calls the adapter. A panicking adapter kills the delivery instead of
// the process: repeating the same event would panic again.
func (s *Scheduler) send(ctx context.Context, t Target, d destinations.Delivery) (res destinations.Result) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("adapter panicked", "destination", t.Name, "type", t.Type, "event_id", d.Event.ID,
				"attempt", d.Attempt, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res = destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
				Message: "adapter panicked (see the log)"}
		}
	}()
	return t.Dest.Send(ctx, d)
}

// normalOutcome maps an outcome outside the four known ones (an adapter bug)
// to Retry: retrying is bounded by the policy, losing the event is not undoable.
func normalOutcome(o destinations.Outcome) destinations.Outcome {
	switch o {
	case destinations.Delivered, destinations.Skipped, destinations.Permanent:
		return o
	default:
		return destinations.Retry
	}
}

// knownReasons is the closed set of reason labels; anything else is dropped
// so an adapter cannot blow up metric cardinality.
var knownReasons = map[destinations.Reason]bool{
	destinations.ReasonNone: true, destinations.ReasonTimeout: true, destinations.ReasonNetwork: true,
	destinations.ReasonRateLimited: true, destinations.ReasonClientError: true,
	destinations.ReasonServerError: true, destinations.ReasonRejected: true, destinations.ReasonSkipped: true,
}

func normalReason(r destinations.Reason) string {
	if knownReasons[r] {
		return string(r)
	}
	return string(destinations.ReasonNone)
}

// record returns a dispatch record of attempt n with the delivery's fields.
func (s *Scheduler) record(a *attempt, n int, status store.State, created time.Time, dur time.Duration) store.Dispatch {
	return store.Dispatch{
		DeliveryID:  a.d.ID,
		EventID:     a.d.EventID,
		EventType:   a.d.EventType,
		Destination: a.target.Name,
		Route:       a.d.Route,
		Replica:     a.d.Lease.Owner,
		Attempt:     n,
		Status:      string(status),
		DurationMs:  dur.Milliseconds(),
		CreatedAt:   created,
	}
}

// records turns a Send result into dispatch records: one per exchange,
// numbered on from the delivery's attempts. Every record but the last tells
// its own request's result ("retrying" when the library tried again,
// "delivered" for a 2xx); the last has the delivery's new
// state, its due time when retrying, and Message as its error when it failed
// without a transport error. Without exchanges (an adapter that does no HTTP,
// a skip) one record carries Message as the error.
func (s *Scheduler) records(a *attempt, res destinations.Result, state store.State, next time.Time,
	start time.Time, dur time.Duration) []store.Dispatch {
	maxBody := a.target.Policy.MaxBody
	first := a.d.Attempts + 1
	var out []store.Dispatch
	if len(res.Exchanges) == 0 {
		r := s.record(a, first, state, start, dur)
		r.Response.Error = destinations.Truncate(res.Message, maxBody)
		out = []store.Dispatch{r}
	} else {
		out = make([]store.Dispatch, len(res.Exchanges))
		for i, x := range res.Exchanges {
			created := x.Started
			if created.IsZero() {
				created = start
			}
			// Each request's record tells its own result: a 2xx that was not
			// the last (Segment sent the track and the identify in two
			// batches) is delivered; a failure the library retried is retrying.
			status := store.Retrying
			if x.Response.StatusCode >= 200 && x.Response.StatusCode < 300 && x.Response.Error == "" {
				status = store.Delivered
			}
			r := s.record(a, first+i, status, created, x.Duration)
			r.Request = x.Request
			r.Request.Body = destinations.Truncate(x.Request.Body, maxBody)
			r.Response = x.Response
			r.Response.Body = destinations.Truncate(x.Response.Body, maxBody)
			r.Response.Error = destinations.Truncate(x.Response.Error, maxBody)
			out[i] = r
		}
		last := &out[len(out)-1]
		last.Status = string(state)
		if last.Response.Error == "" && state != store.Delivered {
			// The adapter's explanation ("channel_not_found", a rejected
			// Segment message behind an HTTP 200) belongs with the request
			// that earned it.
			last.Response.Error = destinations.Truncate(res.Message, maxBody)
		}
	}
	if state == store.Retrying {
		at := next
		out[len(out)-1].NextAttemptAt = &at
	}
	return out
}

// errorText is the delivery's last_error: the adapter's message, else what
// the last request got.
func errorText(res destinations.Result) string {
	if res.Message != "" {
		return res.Message
	}
	if n := len(res.Exchanges); n > 0 {
		x := res.Exchanges[n-1].Response
		if x.Error != "" {
			return x.Error
		}
		if x.StatusCode != 0 {
			return fmt.Sprintf("http status %d", x.StatusCode)
		}
	}
	if res.Reason != destinations.ReasonNone {
		return string(res.Reason)
	}
	return string(normalOutcome(res.Outcome))
}

// count updates the attempt metrics: one per dispatch record. Requests the
// library repeated are classified by their own status (a transport error is
// a network retry); the last one carries the result's outcome and reason.
func (s *Scheduler) count(name string, res destinations.Result, outcome destinations.Outcome, dur time.Duration) {
	if len(res.Exchanges) == 0 {
		s.metrics.attempt(name, string(outcome), normalReason(res.Reason), dur)
		return
	}
	for i, x := range res.Exchanges {
		o, r := outcome, destinations.Reason(normalReason(res.Reason))
		if i < len(res.Exchanges)-1 {
			if x.Response.StatusCode != 0 {
				o, r = destinations.Classify(x.Response.StatusCode)
			} else {
				o, r = destinations.Retry, destinations.ReasonNetwork
			}
		}
		s.metrics.attempt(name, string(o), string(r), x.Duration)
	}
}

func (s *Scheduler) logResult(a *attempt, c store.Completion, res destinations.Result, first, last int) {
	attrs := []any{
		slog.String("destination", a.target.Name),
		slog.String("event_id", a.d.EventID),
		slog.Int("attempt", last),
	}
	switch c.State {
	case store.Delivered:
		if first > 1 || last > first {
			s.log.Info("delivered after retries", attrs...)
		} else {
			s.log.Debug("delivered", attrs...)
		}
	case store.Skipped:
		s.log.Debug("skipped", append(attrs, slog.String("reason", c.LastError))...)
	case store.Retrying:
		s.log.Warn("attempt failed, will retry", append(attrs,
			slog.String("reason", normalReason(res.Reason)), slog.String("error", c.LastError),
			slog.Time("next_attempt_at", c.NextAttemptAt))...)
	default:
		s.log.Warn("delivery dead", append(attrs,
			slog.String("reason", normalReason(res.Reason)), slog.String("error", c.LastError))...)
	}
}
