package sqlite

import (
	"sync"

	"github.com/rcrouter/rcrouter/internal/store"
)

// leaseTable holds the leases of the deliveries claimed by this process, in
// memory: a claim writes nothing, and a delivery stays pending on disk while
// it is leased. One process owns the file, so a lease cannot outlive the
// process that would have to honour it: after a crash every unfinished
// delivery is due again, as ReleaseAll made it before (DESIGN §9). Fencing
// is unchanged (store.Queue): Complete and Release act only while the token
// given still holds the entry, and a claim after Until replaces it.
//
// The writer goroutine alone changes it, inside its transactions, so a
// claim, a completion and the commit that follows are in one order. Readers
// (Delivery, EventDeliveries) take mu to show a leased row as running.
type leaseTable struct {
	mu     sync.Mutex
	m      map[string]*heldLease // by delivery id
	events map[string]int        // leases held per event id
}

// heldLease is one claim's lease and the fields of its row that a
// completion needs, so Complete reads nothing back.
type heldLease struct {
	owner, token                           string
	until, claimedAt                       int64 // Unix ms
	eventID, eventType, destination, route string
	body                                   []byte // the event body Claim returned; never changed
	rowid                                  int64  // the delivery row's
	eventReceived                          int64  // the event's received_at, Unix ms
}

func newLeaseTable() *leaseTable {
	return &leaseTable{m: make(map[string]*heldLease), events: make(map[string]int)}
}

func (t *leaseTable) get(id string) *heldLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

// live reports whether id is leased and its lease has not ended at nowMs.
func (t *leaseTable) live(id string, nowMs int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[id]
	return l != nil && nowMs < l.until
}

// eventHeld reports whether a delivery of event id is leased: on disk it is
// then pending or retrying, so the event is not settled yet.
func (t *leaseTable) eventHeld(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events[id] > 0
}

func (t *leaseTable) put(id string, l *heldLease) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.m[id]; old != nil {
		t.forget(old)
	}
	t.m[id] = l
	t.events[l.eventID]++
}

// forget uncounts l; mu is held.
func (t *leaseTable) forget(l *heldLease) {
	if t.events[l.eventID]--; t.events[l.eventID] <= 0 {
		delete(t.events, l.eventID)
	}
}

// take removes the lease of id when token holds it, and returns it.
func (t *leaseTable) take(id, token string) *heldLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[id]
	if l == nil || l.token != token {
		return nil
	}
	delete(t.m, id)
	t.forget(l)
	return l
}

// drain removes every lease and returns their delivery ids.
func (t *leaseTable) drain() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.m))
	for id := range t.m {
		ids = append(ids, id)
	}
	clear(t.m)
	clear(t.events)
	return ids
}

// overlay shows the leased deliveries of ds as running since their claim,
// as a row updated by the claim would read.
func (t *leaseTable) overlay(ds []store.Delivery) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range ds {
		if l := t.m[ds[i].ID]; l != nil {
			ds[i].State = store.Running
			ds[i].UpdatedAt = fromMs(l.claimedAt)
		}
	}
}
