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
// Notices are hints, so one that is lost (the send failed, the queue was
// full, the process died right after the commit) never fails the write that
// queued it: a lost wake-up is found by the scheduler's poll, a lost
// announcement is missing only from the live view (the dispatch log has the
// record). Pause changes are not sent here: SetPaused notifies inside its
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

// sendTimeout bounds one send; a send that fails is not retried.
const sendTimeout = 5 * time.Second

// notifySQL sends many notices in one statement. set_config makes this
// transaction commit without waiting for its WAL flush, so the queue lock
// is held for no longer than the commit itself.
const notifySQL = `SELECT count(pg_notify(c, p)), set_config('synchronous_commit', 'off', true)
	FROM unnest($1::text[], $2::text[]) AS n(c, p)`

func newNotices(s *Store) *notices {
	n := &notices{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		dueSet: map[string]struct{}{}}
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
	room := max(maxQueuedIDs-len(n.ids), 0)
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
func (n *notices) run() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.send()
		case <-n.stop:
			n.send()
			return
		}
	}
}

// take empties the queue into one statement's arguments: announcements,
// then wake-ups. (A resume's wake-up is queued after SetPaused committed
// its notice, so a worker learns of the resume first.)
func (n *notices) take() (chans, payloads []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var sb strings.Builder
	flush := func() {
		if sb.Len() > 0 {
			chans, payloads = append(chans, chanDispatch), append(payloads, n.s.replica+"\n"+sb.String())
			sb.Reset()
		}
	}
	for _, id := range n.ids {
		if sb.Len()+len(id)+1 > maxPayload {
			flush()
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(id)
	}
	flush()
	for _, d := range n.due {
		chans, payloads = append(chans, chanDue), append(payloads, d)
	}
	clear(n.ids)
	clear(n.due)
	clear(n.dueSet)
	n.ids, n.due = n.ids[:0], n.due[:0]
	return chans, payloads
}

func (n *notices) send() {
	chans, payloads := n.take()
	if len(chans) == 0 {
		return
	}
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
		n.s.log.Warn("store notices not sent; other replicas find the work by polling", "count", len(chans), "err", err)
	case err == nil && n.failing:
		n.failing = false
		n.s.log.Info("store notices sent again")
	}
}
