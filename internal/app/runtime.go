package app

import (
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/delivery"
	"github.com/rcrouter/rcrouter/router"
)

// runtime is one loaded configuration: compiled routes and live adapters.
// It is swapped whole on reload.
type runtime struct {
	cfg      *config.Config
	routes   *router.Routes
	adapters map[string]adapter
	targets  []delivery.Target // what the scheduler was given
}

type adapter struct {
	cfg  config.Destination // what it was built from, to reuse it across reloads
	dest destinations.Destination
	caps destinations.Capabilities
}

// build compiles cfg into a runtime and applies it to the scheduler. Adapters
// of destinations whose config did not change are reused from old, so a
// reload does not reset Segment batches or reopen files.
func (a *App) build(cfg *config.Config, old *runtime) (*runtime, error) {
	routes, err := router.Compile(cfg.Routes)
	if err != nil {
		return nil, err
	}
	rt := &runtime{cfg: cfg, routes: routes, adapters: map[string]adapter{}}
	targets := make([]delivery.Target, 0, len(cfg.Names))
	for _, name := range cfg.Names {
		d := cfg.Destinations[name]
		var ad adapter
		if old != nil {
			if prev, ok := old.adapters[name]; ok && reflect.DeepEqual(prev.cfg, *d) {
				ad = prev
			}
		}
		if ad.dest == nil {
			dest, err := a.newDestination(cfg, d)
			if err != nil {
				rt.closeNew(old)
				return nil, fmt.Errorf("destination %s: %w", name, err)
			}
			ad = adapter{cfg: *d, dest: dest, caps: destinations.CapabilitiesOf(dest)}
		}
		rt.adapters[name] = ad
		targets = append(targets, delivery.Target{Name: name, Type: d.Type, Dest: ad.dest,
			Policy: policy(cfg, d), Caps: delivery.Capabilities(ad.caps)})
	}
	rt.targets = targets
	a.sched.Apply(targets)
	return rt, nil
}

// policy maps a destination's options, with config's defaults applied, to
// the scheduler's Policy field by field; package delivery derives the rest
// (Policy.effective) from it and the type's Capabilities, which the adapter
// declares (destinations.Capable), so nothing here decides a value.
func policy(cfg *config.Config, d *config.Destination) delivery.Policy {
	o := d.Options
	return delivery.Policy{
		Timeout:          o.Timeout,
		Concurrency:      o.Concurrency,
		RateLimit:        o.RateLimit,
		MaxAttempts:      o.Retry.MaxAttempts,
		InitialInterval:  o.Retry.InitialInterval,
		MaxInterval:      o.Retry.MaxInterval,
		MaxElapsedTime:   o.Retry.MaxElapsedTime,
		FailureThreshold: o.CircuitBreaker.FailureThreshold,
		OpenFor:          o.CircuitBreaker.OpenFor,
		MaxBody:          cfg.Storage.DispatchBodyBytes,
	}
}

// newDestination builds the adapter of d through its registered type.
func (a *App) newDestination(cfg *config.Config, d *config.Destination) (destinations.Destination, error) {
	t, ok := Types().Lookup(d.Type)
	if !ok {
		return nil, fmt.Errorf("unknown destination type %q", d.Type)
	}
	return t.New(d.Name, d.Block, destinations.Options{
		Timeout: d.Options.Timeout,
		MaxBody: cfg.Storage.DispatchBodyBytes,
		Logger:  a.log, // adapters add their own "destination" attribute
		Version: a.opts.Version,
	})
}

// closeNew closes the adapters rt built that old does not share (a failed build).
func (rt *runtime) closeNew(old *runtime) {
	for name, ad := range rt.adapters {
		if old != nil && old.adapters[name].dest == ad.dest {
			continue
		}
		closeDest(ad.dest)
	}
}

// retire closes old's adapters that next no longer uses, after in-flight
// attempts with them had time to finish (they hold the old adapter).
func (a *App) retire(old, next *runtime) {
	var gone []destinations.Destination
	for name, ad := range old.adapters {
		if next.adapters[name].dest != ad.dest {
			gone = append(gone, ad.dest)
		}
	}
	if len(gone) == 0 {
		return
	}
	grace := 2 * time.Minute
	for _, t := range old.targets {
		grace = max(grace, t.Lease())
	}
	a.retireWG.Add(1)
	go func() {
		defer a.retireWG.Done()
		t := a.opts.Clock.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C():
		case <-a.stopping():
		}
		for _, d := range gone {
			closeDest(d)
		}
	}()
}

func (a *App) closeAdapters(rt *runtime) {
	if rt == nil {
		return
	}
	for _, ad := range rt.adapters {
		closeDest(ad.dest)
	}
}

func closeDest(d destinations.Destination) {
	if c, ok := d.(io.Closer); ok {
		c.Close()
	}
}
