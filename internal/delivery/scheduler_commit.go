package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rcrouter/rcrouter/internal/store"
)

const (
	// commitQueue bounds completions waiting for the store. When it is full,
	// attempts wait to hand theirs over; until it is written each counts
	// against its worker's capacity (worker.committing), so workers stop
	// claiming: back-pressure instead of memory growth.
	commitQueue = 256
	// commitBatch bounds one store.Complete call (one transaction).
	commitBatch = 64
)

// committer writes completions from every worker in shared transactions:
// group commit. It takes what is queued when it is free, so under load the
// batch holds whatever arrived during the previous write (one fsync for many
// attempts), and at low load a lone completion is written at once without a
// timer adding latency.
type committer struct {
	st   store.Queue
	log  *slog.Logger
	in   chan commitReq
	done chan struct{}
}

type commitReq struct {
	c store.Completion
	// reply receives the result; or, when nil, done is called with it on
	// the committer's goroutine (it must not block).
	reply chan error // cap 1
	done  func(error)
}

func (r commitReq) answer(err error) {
	if r.done != nil {
		r.done(err)
		return
	}
	r.reply <- err
}

func newCommitter(st store.Queue, log *slog.Logger) *committer {
	return &committer{st: st, log: log, in: make(chan commitReq, commitQueue), done: make(chan struct{})}
}

// submit queues c without waiting for the write; done gets the result on
// the committer's goroutine (on success the store has set the ids of
// c.Dispatches in place). It blocks only while the queue is full. The
// attempt that submits can end, and its slot run the next delivery, while
// the store writes this one: a slot's cycle is then its Send, not its Send
// plus a transaction.
func (c *committer) submit(comp store.Completion, done func(error)) {
	c.in <- commitReq{c: comp, done: done}
}

// run writes batches until close; it drains the queue before returning.
// ctx must not be cancelled by shutdown: queued completions are always written.
func (c *committer) run(ctx context.Context) {
	defer close(c.done)
	batch := make([]commitReq, 0, commitBatch)
	for req := range c.in {
		batch = append(batch[:0], req)
	fill:
		for len(batch) < commitBatch {
			select {
			case r, ok := <-c.in:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		c.flush(ctx, batch)
	}
}

// flush writes one batch. Completions whose lease was lost are refused while
// the rest commit: each learns its own answer. If the transaction fails,
// each completion is tried alone, so one bad completion (a delivery deleted
// meanwhile) does not sink the others.
func (c *committer) flush(ctx context.Context, batch []commitReq) {
	cs := make([]store.Completion, len(batch))
	for i, r := range batch {
		cs[i] = r.c
	}
	err := c.st.Complete(ctx, cs)
	var lost *store.LeaseLostError
	if errors.As(err, &lost) {
		for _, r := range batch {
			if lost.Lost(r.c.DeliveryID) {
				r.answer(fmt.Errorf("complete delivery %s: %w", r.c.DeliveryID, store.ErrLeaseLost))
			} else {
				r.answer(nil)
			}
		}
		return
	}
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.answer(err)
		}
		return
	}
	c.log.Warn("batched completion failed, writing one by one", "count", len(batch), "err", err)
	for i, r := range batch {
		r.answer(c.st.Complete(ctx, cs[i:i+1]))
	}
}

// close stops run after the queue is drained. Callers guarantee that no
// commit starts after close.
func (c *committer) close() {
	close(c.in)
	<-c.done
}
