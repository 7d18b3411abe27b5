package postgres

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// notices sends the NOTIFYs of writes after their commit, outside their
// transactions. PostgreSQL takes a server-wide lock at the commit of every
// transaction that called pg_notify (PreCommit_Notify locks the
// notification queue) and holds it until that commit is flushed, so writes
// that notified inside their own transaction had every commit of every
// replica wait for every other's. Here one goroutine sends all that writes
// queued since its last send in one autocommit statement, deduplicated (one
// wake-up per destination), committed without waiting for its flush: a
// notice is not data.
//
// Notices are hints, so one that is lost (the queue was full, the process
// died right after the commit) never fails the write that queued it, and a
// send that failed is retried rather than reported to any writer: a lost
// wake-up is found by the scheduler's poll, a lost announcement is missing
// only from the live view (the dispatch log has the record). Pause changes are not sent here: SetPaused notifies inside its
// own transaction, so a committed pause always reaches every listener.
type notices struct {
	s    *Store
	kick chan struct{} // cap 1: something was queued
	stop chan struct{} // closed by close: send what is queued, then return
	done chan struct{} // closed when run has returned

	mu     sync.Mutex
	due    []string            // destinations to wake, in first-queued order
	dueSet map[string]struct{} // of due
	ids    []string            // dispatch records to announce, in commit order

	maxIDs  int          // bound of ids (maxQueuedIDs)
	dropped atomic.Int64 // announcements not queued: the queue was full
	failing bool         // the last send failed (log once per outage); run's own

	// onSend, nil in production, sees each send's channels and payloads
	// before it goes out (tests hold the sender with it).
	onSend func(chans, payloads []string)
}

// maxQueuedIDs bounds the announcements waiting for the sender (STYLE rule
// 7): past it, new ones are dropped and counted, as a full feed subscriber
// drops records.
const maxQueuedIDs = 1 << 16

// maxPayload keeps a chanDispatch payload under NOTIFY's 8000 bytes.
const maxPayload = 7000

// sendTimeout bounds one send; one that fails is retried (see run).
const sendTimeout = 5 * time.Second

// notifySQL sends many notices in one statement. set_config makes this
// transaction commit without waiting for its WAL flush, so the queue lock
// is held for no longer than the commit itself.
const notifySQL = `SELECT count(pg_notify(c, p)), set_config('synchronous_commit', 'off', true)
	FROM unnest($1::text[], $2::text[]) AS n(c, p)`

func newNotices(s *Store) *notices {
	n := &notices{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		dueSet: map[string]struct{}{}, maxIDs: maxQueuedIDs}
	go n.run()
	return n
}

// wake queues a wake-up of each destination on every replica.
func (n *notices) wake(dests ...string) {
	if len(dests) == 0 {
		return
	}
	n.mu.Lock()
	for _, d := range dests {
		if _, ok := n.dueSet[d]; !ok {
			n.dueSet[d] = struct{}{}
			n.due = append(n.due, d)
		}
	}
	n.mu.Unlock()
	n.poke()
}

// announce queues new dispatch records for every replica's feed.
func (n *notices) announce(ids []string) {
	if len(ids) == 0 {
		return
	}
	n.mu.Lock()
	room := max(n.maxIDs-len(n.ids), 0)
	if len(ids) > room {
		n.dropped.Add(int64(len(ids) - room))
		ids = ids[:room]
	}
	n.ids = append(n.ids, ids...)
	n.mu.Unlock()
	n.poke()
}

func (n *notices) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// close sends what is queued and stops the sender; the pool must still be
// open.
func (n *notices) close() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
}

// run sends until close. While one send is out, later writes queue up and
// go together in the next: under load, one statement serves many commits.
// A send that failed (the database is restarting, the pool is exhausted) is
// queued again and retried after a backoff, so a transient failure delays
// notices instead of losing them; close tries once more and gives up.
func (n *notices) run() {
	defer close(n.done)
	wait := minReconnect
	for {
		select {
		case <-n.kick:
		case <-n.stop:
			n.send()
			return
		}
		if n.send() {
			wait = minReconnect
			continue
		}
		n.poke() // what failed is queued again
		select {
		case <-time.After(wait):
		case <-n.stop:
			n.send()
			return
		}
		wait = min(2*wait, maxReconnect)
	}
}

// take empties the queue: announcements in commit order, wake-ups in
// first-queued order. (A resume's wake-up is queued after SetPaused
// committed its notice, so a worker learns of the resume first.)
func (n *notices) take() (ids, due []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids, due = n.ids, n.due
	n.ids, n.due = nil, nil
	clear(n.dueSet)
	return ids, due
}

// requeue puts back what a failed send took, ahead of what was queued
// since, within the bound (the oldest are dropped first).
func (n *notices) requeue(ids, due []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	room := max(n.maxIDs-len(n.ids), 0)
	if len(ids) > room {
		n.dropped.Add(int64(len(ids) - room))
		ids = ids[len(ids)-room:]
	}
	n.ids = append(ids, n.ids...)
	later := n.due
	n.due = nil
	clear(n.dueSet)
	for _, d := range append(due, later...) {
		if _, ok := n.dueSet[d]; !ok {
			n.dueSet[d] = struct{}{}
			n.due = append(n.due, d)
		}
	}
}

// statement turns ids and due into notifySQL's arguments: announcements in
// payloads under maxPayload, then wake-ups.
func (n *notices) statement(ids, due []string) (chans, payloads []string) {
	var sb strings.Builder
	flush := func() {
		if sb.Len() > 0 {
			chans, payloads = append(chans, chanDispatch), append(payloads, n.s.replica+"\n"+sb.String())
			sb.Reset()
		}
	}
	for _, id := range ids {
		if sb.Len()+len(id)+1 > maxPayload {
			flush()
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(id)
	}
	flush()
	for _, d := range due {
		chans, payloads = append(chans, chanDue), append(payloads, d)
	}
	return chans, payloads
}

// send sends everything queued in one statement; false: it failed, and
// what it took is queued again.
func (n *notices) send() bool {
	ids, due := n.take()
	if len(ids) == 0 && len(due) == 0 {
		return true
	}
	chans, payloads := n.statement(ids, due)
	if n.onSend != nil {
		n.onSend(chans, payloads)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	var count int64
	var setting string
	err := n.s.pool.QueryRow(ctx, notifySQL, chans, payloads).Scan(&count, &setting)
	switch {
	case err != nil && !n.failing:
		n.failing = true
		n.s.log.Warn("store notices not sent; retrying, and other replicas find the work by polling meanwhile", "count", len(chans), "err", err)
	case err == nil && n.failing:
		n.failing = false
		n.s.log.Info("store notices sent again")
	}
	if err != nil {
		n.requeue(ids, due)
		return false
	}
	return true
}
