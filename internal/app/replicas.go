package app

import (
	"context"
	"time"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/delivery"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres"
)

// Replicas on one PostgreSQL database (DESIGN §8): heartbeats, the
// housekeeping leader, the live feed, GET /api/v1/replicas.
const (
	// heartbeatEvery is how often a replica says it is alive; aliveWithin,
	// three beats, is how long a silent replica still counts as alive.
	heartbeatEvery = 5 * time.Second
	aliveWithin    = 3 * heartbeatEvery
	// forgetAfter drops the rows of replicas gone this long (every restart
	// under a default name adds one).
	forgetAfter = 24 * time.Hour
	// leaderTTL: the housekeeping leader renews every heartbeat; a dead
	// leader is replaced at most this much later.
	leaderTTL = 3 * heartbeatEvery
	// housekeeping is the role that runs retention and the lease reaper.
	housekeeping = "housekeeping"
	// reapBatch bounds one reaper statement.
	reapBatch = 500
	// clusterTimeout bounds each heartbeat, election and reap.
	clusterTimeout = 10 * time.Second
)

// replicaName is server.replica, else <hostname>-<pid>.
func replicaName(cfg *config.Config) string {
	if cfg.Server.Replica != "" {
		return cfg.Server.Replica
	}
	return delivery.DefaultOwner()
}

// Replica returns this process's replica name.
func (a *App) Replica() string { return a.replica }

// Replicas implements server.ReplicaLister: every replica of the shared
// store, or this process alone on SQLite.
func (a *App) Replicas(ctx context.Context) ([]store.Replica, error) {
	now := a.opts.Clock.Now()
	if a.pg == nil {
		return []store.Replica{{Name: a.replica, Version: a.opts.Version, StartedAt: a.started.UTC(),
			LastSeenAt: now.UTC(), ConfigSHA256: a.Config().SHA256, Alive: true}}, nil
	}
	return a.pg.Replicas(ctx, now, aliveWithin, forgetAfter)
}

// forwardFeed hands every replica's dispatch records, this one's included,
// to the live stream, while a stream client is connected: the store reads
// the records back only while it has a subscriber.
func (a *App) forwardFeed(ctx context.Context) {
	a.hub.Feed(ctx, a.pg.SubscribeDispatches)
}

// replicaLoop beats this replica's heartbeat and, while it holds the
// housekeeping role, reaps expired leases every beat and purges old records
// every maintainEvery. Any replica may hold the role; a dead holder's lapses
// after leaderTTL and another takes it. On the way out it resigns, so the
// next one takes over at once.
func (a *App) replicaLoop(ctx context.Context) {
	t := a.opts.Clock.NewTimer(0)
	defer t.Stop()
	var leading bool
	var lastPurge time.Time
	for {
		select {
		case <-ctx.Done():
			if leading {
				a.resign(ctx)
			}
			return
		case <-t.C():
		}
		now := a.opts.Clock.Now()
		a.beat(ctx, now)
		lead := !a.leaving.Load() && a.elect(ctx, now)
		if lead != leading {
			switch {
			case lead:
				a.log.Info("this replica runs housekeeping (retention, lease reaper)")
			case a.leaving.Load():
				a.resign(ctx)
			default:
				a.log.Info("housekeeping moved to another replica")
			}
			leading = lead
		}
		if leading {
			a.reap(ctx, now)
			if now.Sub(lastPurge) >= maintainEvery {
				a.purge(ctx)
				lastPurge = now
			}
		}
		t.Reset(heartbeatEvery)
	}
}

// resign hands the housekeeping role over at shutdown, so the next replica
// takes it at its next beat instead of after leaderTTL.
func (a *App) resign(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clusterTimeout)
	defer cancel()
	if err := a.pg.Resign(rctx, housekeeping); err != nil {
		a.log.Warn("resign housekeeping", "err", err)
		return
	}
	a.log.Info("housekeeping handed over: this replica stops")
}

func (a *App) beat(ctx context.Context, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	info := postgres.ReplicaInfo{Version: a.opts.Version, StartedAt: a.started, ConfigSHA256: a.Config().SHA256}
	if err := a.pg.Heartbeat(ctx, info, now); err != nil && ctx.Err() == nil {
		a.log.Warn("replica heartbeat", "err", err)
	}
}

// elect renews or takes the housekeeping role. When the database cannot
// say, this replica stops housekeeping: two leaders must never overlap.
func (a *App) elect(ctx context.Context, now time.Time) bool {
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	ok, _, err := a.pg.Lead(ctx, housekeeping, leaderTTL, now)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("housekeeping election", "err", err)
		}
		return false
	}
	return ok
}

// reap returns deliveries whose lease expired (their replica died) to the
// queue, and wakes their destinations on every replica.
func (a *App) reap(ctx context.Context, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	for ctx.Err() == nil {
		ls, err := a.pg.ReapExpired(ctx, now, reapBatch)
		if err != nil {
			a.log.Warn("lease reaper", "err", err)
			return
		}
		owners := map[string]int{}
		for _, l := range ls {
			owners[l.Owner]++
		}
		for owner, n := range owners {
			a.log.Warn("expired leases returned to the queue (their replica died or hung)", "owner", owner, "count", n)
		}
		if len(ls) < reapBatch {
			return
		}
	}
}
