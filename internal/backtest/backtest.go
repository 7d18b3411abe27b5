// Package backtest answers "what will this route change do?": it runs the
// stored events of a window through two compiled route sets, the running
// one and a proposed one, and reports per destination the events it would
// gain and lose (DESIGN §5 `rcrouter routes diff`, §6 reload dry run).
//
// It routes with router.Routes, the code ingest runs, never a copy of its
// rules, and reads the store a page at a time, so a week of traffic is never
// in memory at once: memory is one page of bodies plus the samples.
package backtest

import (
	"context"
	"fmt"
	"time"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/router"
)

// Samples is how many event ids a Change keeps per direction.
const Samples = 5

// pageSize is the store page read at a time: the store's largest.
const pageSize = 500

// Source is the store read the backtest needs (store.Reader has it).
type Source interface {
	Events(ctx context.Context, f store.EventFilter) ([]store.Event, string, error)
}

// Change is what a proposed route set changes for one destination.
type Change struct {
	Gained        int      `json:"gained"`
	Lost          int      `json:"lost"`
	SamplesGained []string `json:"samples_gained"` // newest first, at most Samples
	SamplesLost   []string `json:"samples_lost"`
}

// Result is the outcome of a backtest.
type Result struct {
	Since time.Time `json:"since"`
	// Events is how many stored events were routed both ways.
	Events int `json:"events"`
	// Undecodable counts stored bodies that no longer decode; they are
	// left out (ingest refuses such bodies, so it stays 0 unless the
	// decoder changed).
	Undecodable int `json:"undecodable,omitempty"`
	// Diff holds the destinations whose events change, by name; never nil.
	Diff map[string]*Change `json:"diff"`
}

// Changed reports whether any destination gains or loses an event.
func (r Result) Changed() bool { return len(r.Diff) > 0 }

// Options bound a backtest.
type Options struct {
	Since time.Time // received at or after; zero: every stored event
	Until time.Time // received before; zero: no bound
	// Progress, when set, is called after each page with the events read
	// so far and the received_at of the oldest one (pages go newest first).
	Progress func(read int, reached time.Time)
}

// Run routes every stored event of the window through current and proposed
// and compares, per event, the destinations each reaches.
func Run(ctx context.Context, src Source, current, proposed *router.Routes, opts Options) (Result, error) {
	res := Result{Since: opts.Since, Diff: map[string]*Change{}}
	var was, will router.Decision
	f := store.EventFilter{Since: opts.Since, Until: opts.Until, Limit: pageSize}
	for {
		page, next, err := src.Events(ctx, f)
		if err != nil {
			return res, fmt.Errorf("backtest: read events: %w", err)
		}
		for _, stored := range page {
			e, err := revenuecat.Decode(stored.Body)
			if err != nil {
				res.Undecodable++
				continue
			}
			current.RouteInto(&was, e)
			proposed.RouteInto(&will, e)
			res.Events++
			res.compare(stored.ID, was.Destinations, will.Destinations)
		}
		if opts.Progress != nil && len(page) > 0 {
			opts.Progress(res.Events+res.Undecodable, page[len(page)-1].ReceivedAt)
		}
		if next == "" {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		f.Before = next
	}
}

// compare records the destinations of will missing from was as gained and
// those of was missing from will as lost. A Decision holds each destination
// once and few of them, so a linear search beats building sets.
func (r *Result) compare(id string, was, will []router.Match) {
	for _, m := range will {
		if !reaches(was, m.Destination) {
			c := r.change(m.Destination)
			count(&c.Gained, &c.SamplesGained, id)
		}
	}
	for _, m := range was {
		if !reaches(will, m.Destination) {
			c := r.change(m.Destination)
			count(&c.Lost, &c.SamplesLost, id)
		}
	}
}

// count adds one event to a side of a Change, keeping the first Samples ids.
func count(n *int, samples *[]string, id string) {
	*n++
	if len(*samples) < Samples {
		*samples = append(*samples, id)
	}
}

func (r *Result) change(dest string) *Change {
	c := r.Diff[dest]
	if c == nil {
		c = &Change{SamplesGained: []string{}, SamplesLost: []string{}}
		r.Diff[dest] = c
	}
	return c
}

func reaches(ms []router.Match, dest string) bool {
	for _, m := range ms {
		if m.Destination == dest {
			return true
		}
	}
	return false
}
