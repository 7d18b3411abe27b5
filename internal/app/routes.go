package app

import (
	"context"
	"slices"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/router"
)

// Routes implements server.Backend: the running routes in config order
// with the events each matched in the last 24 h, by the verdicts stored at
// ingest (a route renamed since counts from its new name on).
func (a *App) Routes(ctx context.Context) ([]server.RouteStatus, error) {
	cfg := a.cur.Load().cfg
	matched, err := a.store.RouteMatches(ctx, a.opts.Clock.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	out := make([]server.RouteStatus, len(cfg.Routes))
	for i, r := range cfg.Routes {
		out[i] = server.RouteStatus{Name: r.Name, To: slices.Clone(r.To), Stop: r.Stop, Matched24h: matched[r.Name]}
	}
	return out, nil
}

// TestRoute implements server.Backend: the running routes' decision for e.
func (a *App) TestRoute(_ context.Context, e *event.Event) (router.Decision, error) {
	return a.cur.Load().routes.Route(e), nil
}
