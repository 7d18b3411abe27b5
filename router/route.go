package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr/vm"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/event"
)

// Routes are the compiled `routes:` of a config: everything that can be
// prepared once (globs, value lists, reason texts, `when` programs) is, so
// routing one event reads the event and allocates only its result. Safe for
// concurrent use.
type Routes struct {
	routes []compiledRoute
	// targets is how many distinct destinations the routes name: the most
	// a Decision can hold.
	targets int
	// vms are reusable expr machines; a VM is not safe for concurrent use.
	vms sync.Pool
}

// Decision is where one event goes, and why.
type Decision struct {
	// Destinations are the destinations to deliver to, each once, in the
	// order routes first named them.
	Destinations []Match
	// Verdicts has one entry per route, in config order.
	Verdicts []Verdict
}

// Match is one destination of a Decision, with the first route that named it.
type Match struct {
	Destination string `json:"destination"`
	Route       string `json:"route"`
}

// Verdict is what one route made of an event (DESIGN §6 "routes").
type Verdict struct {
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	Reason  string `json:"reason"`
}

// Names lists the destination names of d, as the webhook answer shows them;
// it is never nil, so it encodes as [] when no route matched.
func (d Decision) Names() []string {
	out := make([]string, len(d.Destinations))
	for i, m := range d.Destinations {
		out[i] = m.Destination
	}
	return out
}

// The fixed reasons (DESIGN §6 routes[].reason).
const (
	reasonMatched   = "matched"
	reasonWhenFalse = "when was false"
)

type compiledRoute struct {
	name    string
	match   []matcher // all must match; none: every event matches
	exclude []matcher // rejects when all match; none: rejects nothing
	when    *vm.Program
	to      []string
	stop    bool
	// stopped is the reason later routes get when this one stops evaluation.
	stopped string
}

// Compile prepares routes (already validated by config.Load) for Route. It
// fails only on a `when` that does not compile.
func Compile(routes []config.Route) (*Routes, error) {
	r := &Routes{routes: make([]compiledRoute, len(routes))}
	r.vms.New = func() any { return new(vm.VM) }
	var errs []error
	seen := map[string]bool{}
	for i, src := range routes {
		cr := compiledRoute{
			name:    src.Name,
			match:   compileMatchers(src.Match),
			exclude: compileMatchers(src.Exclude),
			to:      slices.Clone(src.To),
			stop:    src.Stop,
			stopped: fmt.Sprintf("not evaluated: route %q stopped evaluation", src.Name),
		}
		if src.When != "" {
			p, err := config.CompileWhen(src.When)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %q: when: %s", src.Name, config.ExprMessage(err)))
			}
			cr.when = p
		}
		for _, to := range src.To {
			if !seen[to] {
				seen[to] = true
				r.targets++
			}
		}
		r.routes[i] = cr
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Len is the number of routes.
func (r *Routes) Len() int { return len(r.routes) }

// Route decides where e goes: every route is evaluated in order (until one
// with `stop: true` matches) and every matching route adds its destinations.
func (r *Routes) Route(e *event.Event) Decision {
	d := Decision{
		Destinations: make([]Match, 0, r.targets),
		Verdicts:     make([]Verdict, 0, len(r.routes)),
	}
	r.RouteInto(&d, e)
	return d
}

// RouteInto is Route into a Decision whose slices are reused, for callers
// that route many events and keep no result.
func (r *Routes) RouteInto(d *Decision, e *event.Event) {
	d.Destinations = d.Destinations[:0]
	// One verdict per route, written in place.
	d.Verdicts = slices.Grow(d.Verdicts[:0], len(r.routes))[:len(r.routes)]
	var m *vm.VM // taken from the pool at the first `when`, for all of them
	defer func() {
		if m != nil {
			r.vms.Put(m)
		}
	}()
	stoppedBy := -1
	for i := range r.routes {
		cr := &r.routes[i]
		// Field by field: a whole-struct store is a bulk copy with a
		// write barrier for each pointer while the GC runs.
		v := &d.Verdicts[i]
		v.Name = cr.name
		if stoppedBy >= 0 {
			v.Matched, v.Reason = false, r.routes[stoppedBy].stopped
			continue
		}
		ok, reason := r.evaluate(cr, e, &m)
		v.Matched, v.Reason = ok, reason
		if !ok {
			continue
		}
		for _, to := range cr.to {
			if !named(d.Destinations, to) {
				d.Destinations = append(d.Destinations, Match{Destination: to, Route: cr.name})
			}
		}
		if cr.stop {
			stoppedBy = i
		}
	}
}

// evaluate applies match, then exclude, then when (the costly one) last;
// *m is the expr VM of this call, taken from the pool when first needed.
func (r *Routes) evaluate(cr *compiledRoute, e *event.Event, m **vm.VM) (bool, string) {
	for i := range cr.match {
		if !cr.match[i].matches(e) {
			return false, cr.match[i].miss(e)
		}
	}
	if len(cr.exclude) > 0 && allMatch(cr.exclude, e) {
		return false, excluded(cr.exclude, e)
	}
	if cr.when == nil {
		return true, reasonMatched
	}
	if *m == nil {
		*m = r.vms.Get().(*vm.VM)
	}
	out, err := (*m).Run(cr.when, e)
	if err != nil {
		// A run-time error (nil where a number was expected, an index out
		// of range) is the route not matching, shown with its reason.
		return false, "when failed: " + config.ExprMessage(err)
	}
	if ok, _ := out.(bool); !ok {
		return false, reasonWhenFalse
	}
	return true, reasonMatched
}

func allMatch(ms []matcher, e *event.Event) bool {
	for i := range ms {
		if !ms[i].matches(e) {
			return false
		}
	}
	return true
}

// excluded names every exclude key that matched; one key (the usual case)
// reuses its cached text whole.
func excluded(ms []matcher, e *event.Event) string {
	if len(ms) == 1 {
		return ms[0].hit(e, "excluded: ")
	}
	parts := make([]string, len(ms))
	for i := range ms {
		parts[i] = ms[i].hit(e, "")
	}
	return "excluded: " + strings.Join(parts, " and ")
}

func named(ms []Match, destination string) bool {
	for _, m := range ms {
		if m.Destination == destination {
			return true
		}
	}
	return false
}
