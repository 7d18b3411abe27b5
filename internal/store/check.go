package store

import (
	"errors"
	"fmt"
)

// The rules below are the same for every store; each store calls them
// before it writes, so the conformance suite's refusals have one source.

// Check refuses an event without id or type, or one that names a
// destination twice or without a name (a destination gets an event once).
func (e NewEvent) Check() error {
	if e.ID == "" {
		return errors.New("ingest: empty event id")
	}
	if e.Type == "" {
		return fmt.Errorf("ingest event %q: empty type", e.ID)
	}
	seen := make(map[string]bool, len(e.Deliveries))
	for _, d := range e.Deliveries {
		if d.Destination == "" {
			return fmt.Errorf("ingest event %q: delivery with empty destination", e.ID)
		}
		if seen[d.Destination] {
			return fmt.Errorf("ingest event %q: destination %q named twice", e.ID, d.Destination)
		}
		seen[d.Destination] = true
	}
	return nil
}

// Check refuses a completion that is not a final or retry state, or that
// carries no lease token.
func (c Completion) Check() error {
	switch c.State {
	case Delivered, Retrying, Dead, Skipped:
	default:
		return fmt.Errorf("complete delivery %q: state %q is not a completion state", c.DeliveryID, c.State)
	}
	if c.LeaseToken == "" {
		return fmt.Errorf("complete delivery %q: no lease token", c.DeliveryID)
	}
	return nil
}

// Normalize returns f with its default status (Dead), or an error for a
// filter without destination or on Running deliveries, which belong to
// their lease holder.
func (f ReplayFilter) Normalize() (ReplayFilter, error) {
	if f.Destination == "" {
		return f, errors.New("replay: empty destination")
	}
	if f.Status == "" {
		f.Status = Dead
	}
	switch f.Status {
	case Pending, Retrying, Dead, Delivered, Skipped:
		return f, nil
	default:
		return f, fmt.Errorf("replay %s: cannot replay %s deliveries", f.Destination, f.Status)
	}
}

// Page sizes of Dispatches.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// PageLimit is f.Limit within 1..MaxPageLimit (0 or less: the default).
func (f DispatchFilter) PageLimit() int {
	if f.Limit <= 0 {
		return DefaultPageLimit
	}
	return min(f.Limit, MaxPageLimit)
}

// Page cuts rows, read newest first with one row more than limit, to one
// page and the cursor of the next ("" on the last page).
func Page(rows []Dispatch, limit int) ([]Dispatch, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	last := rows[limit-1]
	return rows, EncodeCursor(last.CreatedAt, last.ID)
}
