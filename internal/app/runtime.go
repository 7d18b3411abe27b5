package app

import (
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/destinations/segment"
	"github.com/rcrouter/rcrouter/destinations/slack"
	"github.com/rcrouter/rcrouter/destinations/webhook"
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
			ad = adapter{cfg: *d, dest: dest}
		}
		rt.adapters[name] = ad
		targets = append(targets, delivery.Target{Name: name, Type: d.Type, Dest: ad.dest,
			Policy: policy(cfg, d), Caps: capabilities(d, ad.dest)})
	}
	rt.targets = targets
	a.sched.Apply(targets)
	return rt, nil
}

// policy maps a destination's options, with config's defaults applied, to
// the scheduler's Policy field by field; package delivery derives the rest
// (Policy.effective), so nothing here decides a value.
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

// capabilities is what a destination's type asks of the scheduler. It is the
// hook for the registry of destination types, which declares them on the
// type; until then they are found here.
func capabilities(d *config.Destination, dest destinations.Destination) delivery.Capabilities {
	var c delivery.Capabilities
	if w, ok := dest.(interface{ MaxWait() time.Duration }); ok {
		c.MaxWait = w.MaxWait()
	}
	// Segment's client batches concurrent messages into one request, so a
	// Segment destination runs at least a batch worth of sends at once.
	if d.Type == "segment" {
		c.Batch = max(segment.DefaultBatchSize, d.Segment.BatchSize)
	}
	return c
}

// newDestination is the one switch that knows every adapter (STYLE rule 3).
func (a *App) newDestination(cfg *config.Config, d *config.Destination) (destinations.Destination, error) {
	timeout, maxBody := d.Options.Timeout, cfg.Storage.DispatchBodyBytes
	log := a.log // adapters add their own "destination" attribute
	switch d.Type {
	case "segment":
		return segment.New(d.Name, *d.Segment, segment.Options{Timeout: timeout, MaxBody: maxBody, Logger: log, Version: a.opts.Version})
	case "slack":
		return slack.New(d.Name, *d.Slack, slack.Options{Timeout: timeout, MaxBody: maxBody, Logger: log, Version: a.opts.Version})
	case "webhook":
		return webhook.New(d.Name, *d.Webhook, webhook.Options{Timeout: timeout, MaxBody: maxBody, Logger: log, Version: a.opts.Version})
	case "file":
		return file.New(d.Name, *d.File)
	default:
		return nil, fmt.Errorf("unknown destination type %q", d.Type)
	}
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
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
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
