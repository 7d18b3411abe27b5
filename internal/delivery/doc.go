// Package delivery is rcrouter's delivery engine: it takes the deliveries
// ingest queued in the store (one per event and destination) and gets each
// one to its destination at least once, recording every attempt in the
// dispatch log. Routing (which destinations an event goes to) is package
// router; the adapters that talk to vendors are under destinations/.
//
// # Pipeline
//
// Each destination has its own worker, and a delivery goes through four
// steps, claim → gates → adapter.Send → committer:
//
//  1. Claim. The worker leases due deliveries from the store
//     (store.Claim), for long enough that a Send and its commit fit in the
//     lease (Policy.lease). It claims only when there can be work: after a
//     Wake from ingest, when a retry it scheduled falls due, when its last
//     claim came back full, or once per poll interval as a fallback.
//  2. Gates. Before a claimed delivery starts, the worker asks its start
//     gates (gates.go), each a small type with one question: is the
//     destination paused by an operator (pauseGate)? did the destination
//     ask to be left alone until some time (holdGate, Slack's 429)? how many
//     attempts does the circuit breaker allow (breaker: closed, open,
//     half-open with one probe)? The rate limit (rateGate, a token bucket)
//     bounds how many deliveries are claimed, and a claim takes its tokens.
//     A gate that holds deliveries longer than their lease makes the worker
//     hand them back (store.Release).
//  3. Send. One attempt calls the adapter's Send with a deadline inside
//     the lease. The result is classified (delivered, skipped, permanent,
//     retry): a retry waits a full-jitter backoff, or the destination's
//     Retry-After when longer, both capped by MaxInterval (backoff.go); it
//     is dead instead when MaxAttempts or MaxElapsedTime are used up. The breaker and the hold learn the
//     result at once, before the next Send of that destination can start.
//  4. Commit. The completion (new state and one dispatch record per real
//     request) goes to the committer, which writes the completions of all
//     workers in shared transactions (group commit). Once written, the
//     records go to OnDispatch (the live feed).
//
// A Policy is what a destination's options say (config applies the
// documented defaults); Capabilities are what its type needs whatever the
// options say (a batching client's batch size, a longer Send).
// Policy.effective combines them, in one place, when Apply is called.
//
// # Goroutines and their owners
//
//   - Run: the scheduler's own loop. It starts a worker loop for every new
//     destination that Apply adds, and the committer; it returns after
//     Shutdown (or stops everything at once when its context ends).
//   - One loop per destination (runWorker): the only goroutine that claims
//     for that destination. It exits when the destination is removed by
//     Apply or at Shutdown, handing back the deliveries it holds.
//   - One goroutine per attempt in flight (attempt), at most Concurrency per
//     destination. When its Send returns and every start gate is open, it
//     runs the next ready delivery itself instead of waking the loop.
//   - The committer: one goroutine for all destinations; Shutdown closes it
//     after the last attempt has handed over its completion, and it writes
//     everything queued before it returns.
//
// Shutdown owns the end: no new claims, attempts in flight may finish until
// its context ends; then their deliveries are released (due again at once)
// without a dispatch record, since their result is unknown.
//
// # What is bounded
//
//   - Attempts in flight: Policy.Concurrency per destination, fewer while
//     the accept path is busy (SchedulerOptions.Accepting, BusyWebhooks):
//     webhooks come first, the backlog waits.
//   - Claimed, not started (the ready queue): Concurrency plus claimAhead
//     (64), and only while the last claim came back full, the breaker is
//     closed and there is no rate limit; otherwise no more than can start.
//   - Completions waiting for the store: commitQueue (256); an attempt that
//     finds it full waits, and its worker counts it against its capacity,
//     so the worker stops claiming (back-pressure, not memory growth). One
//     transaction holds at most commitBatch (64) completions.
//   - One Send: its lease minus a margin for the commit, that is
//     3×Timeout or the type's MaxWait.
//   - Releases at shutdown: releaseTimeout.
//
// Destinations are isolated: a slow or failing one fills only its own slots;
// the committer, the only shared stage, never waits on a destination.
//
// # Several replicas (shared.go)
//
// On PostgreSQL several processes claim from one queue. What must hold for
// all of them together comes from the store through SchedulerOptions, and
// the in-memory gate of the same name stays open: the rate limit
// (SharedRate: tokens taken before each claim, at most the free slots), the
// circuit breaker (SharedBreaker: a permit before each claim, one probe on
// one replica when half-open, every failure and the probe's result
// reported after Send) and other replicas' wake-ups and pauses (Signals,
// followed by one goroutine Run starts and Shutdown ends). None of these
// calls is made under a lock. Without them (SQLite) nothing changes.
//
// # Locks
//
// The delivery path (plan, claim, the next ready delivery) takes only its
// worker's mutex, which guards the worker's queue, counters and gates, so
// destinations never wait on each other. Scheduler.mu guards the set of
// workers, the paused flags and the shutdown state (Apply, Pause, State,
// Wake, Shutdown), and is taken before a worker's mutex. Scheduler.inflightMu
// guards the attempts in flight, for Shutdown to abandon; it is taken last.
// Shutdown halts every worker before it waits for the attempts, so an
// attempt begins only on a worker that is not stopped.
package delivery
