// Package postgres is the store.Store for several replicas on one PostgreSQL
// database (DESIGN §8), on pgx/v5 and its pool.
//
// Every write is one short transaction, most of them one statement (one
// round trip, one commit). Ingest groups concurrent webhooks into one
// statement and commit (ingest.go) whose ON CONFLICT on the event id also
// resolves duplicates between replicas; a claim takes due rows with FOR
// UPDATE SKIP LOCKED, so claimers never wait for each other and never take
// the same row.
//
// What replicas share besides the queue — wake-ups and the live dispatch
// feed (LISTEN/NOTIFY), replica heartbeats, the housekeeping leader, the
// rate limit and breaker of each destination — lives in notify.go and
// cluster.go.
//
// Times are kept to the millisecond, as in SQLite, and come from the caller
// (the scheduler's clock): replicas need clocks synchronised (NTP) to well
// under a lease's margin.
//
// # What the app calls
//
//   - Open with the replica name that the scheduler also claims under
//     (server.replica); Open migrates unless NoMigrate. There is no
//     "release everything at start-up": other replicas' leases are theirs.
//   - Heartbeat at start-up and every few seconds; Replicas for
//     GET /api/v1/replicas.
//   - Lead("housekeeping", ttl, now) every ttl/3; while it returns true, run
//     Purge and ReapExpired; Resign on shutdown.
//   - SubscribeWakeups: wake the scheduler's destination ("" wakes all);
//     SubscribePaused: apply pause changes made on other replicas;
//     SubscribeDispatches: the SSE hub's source (every replica's records,
//     this one's included, so the local publish is then not needed).
//   - Per destination, before claiming: BreakerPermit, then TakeTokens when
//     rate_limit is set; after each attempt BreakerRecord.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rcrouter/rcrouter/internal/id"
	"github.com/rcrouter/rcrouter/internal/store"
)

// Options tunes a Store; only DSN is required.
type Options struct {
	// DSN is a libpq URL or key=value string. Its password is a secret:
	// errors from this package never contain it.
	DSN string
	// MaxConns is the pool size of this replica (storage.max_conns).
	// Default 16. The notifier holds one more connection of its own.
	MaxConns int32
	// Replica names this process in the replicas table, the leader row
	// and its sessions (server.replica, default <hostname>-<pid>). Required:
	// it must be the owner the scheduler claims under, so the app computes
	// it once and passes it to both.
	Replica string
	Logger  *slog.Logger // nil: discard
	// MaxBatch is the most webhooks one ingest commit serves. Default 128.
	MaxBatch int
	// Committers is how many ingest commits may run at once. Default 1:
	// a second one made smaller batches and more commits, and the commits of
	// claims and completions waited behind them for the WAL (BENCHMARKS.md,
	// "one ingest committer").
	Committers int
	// NoMigrate: Open refuses a database whose schema is not at
	// store.SchemaVersion instead of migrating it (serve --no-migrate).
	NoMigrate bool
	// Now is the clock for timestamps the caller does not give.
	// Default time.Now.
	Now func() time.Time

	idlePing time.Duration // tests: the notifier's idle ping interval
}

// Store is the PostgreSQL store. Create it with Open.
type Store struct {
	log     *slog.Logger
	now     func() time.Time
	ids     *id.Generator
	replica string
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the notifier's own connection

	closed    atomic.Bool
	closeOnce sync.Once
	stop      context.CancelFunc // ends the notifier
	done      chan struct{}      // closed when the notifier has stopped
	feed      *feed
	ingest    *batcher
	notices   *notices
}

var _ store.Store = (*Store)(nil)

// Open connects to the database, brings its schema up to date (Migrate;
// unless NoMigrate, when it only checks the version) and starts the
// notifier. It fails when the server cannot be reached.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("open postgres store: empty dsn")
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	if opts.Replica == "" {
		return nil, errors.New("open postgres store: empty replica name")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 128
	}
	if opts.Committers <= 0 {
		opts.Committers = 1
	}
	cfg.MaxConns = opts.MaxConns
	// Named sessions: operators (and tests) tell the notifier's connection
	// and each replica's pool apart in pg_stat_activity.
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "rcrouter " + opts.Replica
	}
	notifyCfg := cfg.ConnConfig.Copy()
	notifyCfg.RuntimeParams["application_name"] = "rcrouter-notifier " + opts.Replica
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where(cfg.ConnConfig), err)
	}
	if opts.NoMigrate {
		err = checkVersion(ctx, pool)
	} else {
		var from, to int
		if from, to, err = migrate(ctx, pool); err == nil && from != to {
			opts.Logger.Info("store schema migrated", "from", from, "to", to)
		}
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where(cfg.ConnConfig), err)
	}
	lctx, stop := context.WithCancel(context.Background())
	s := &Store{
		log:     opts.Logger,
		now:     opts.Now,
		ids:     id.NewGenerator(opts.Now, nil),
		replica: opts.Replica,
		pool:    pool,
		connCfg: notifyCfg,
		stop:    stop,
		done:    make(chan struct{}),
	}
	if opts.idlePing <= 0 {
		opts.idlePing = idlePing
	}
	s.feed = newFeed(s, opts.idlePing)
	s.notices = newNotices(s)
	s.ingest = newBatcher(s, opts.Committers, opts.MaxBatch)
	go func() {
		defer close(s.done)
		s.feed.run(lctx)
	}()
	return s, nil
}

// where names the server of a connection config, never its password.
func where(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Replica returns the name this store claims and records attempts under.
func (s *Store) Replica() string { return s.replica }

// Migrate applies pending schema migrations and returns the version reached.
// Replicas that start together serialise on an advisory lock; none fails.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	from, to, err := migrate(ctx, s.pool)
	if err != nil {
		return from, s.fail("migrate", err)
	}
	if from != to {
		s.log.Info("store schema migrated", "from", from, "to", to)
	}
	return to, nil
}

// Close stops the notifier and closes the pool; later calls fail with
// store.ErrClosed. Calling it again returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.ingest.close()  // answers every queued webhook first
		s.notices.close() // sends their wake-ups
		s.stop()
		<-s.done
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers and accepts writes: a server that
// became a read-only standby (after a failover) is not ready.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	var readOnly string
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&readOnly); err != nil {
		return s.fail("ping", err)
	}
	if readOnly != "off" {
		return errors.New("ping: database is read-only")
	}
	return nil
}

func (s *Store) usable() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// fail wraps err of op, reporting store.ErrClosed once Close has begun
// instead of the pool's own "closed pool".
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ms truncates a caller's time to what the store keeps.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
