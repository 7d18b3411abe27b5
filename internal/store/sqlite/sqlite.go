// Package sqlite is the embedded store.Store: one SQLite file in WAL mode,
// owned by one process.
//
// # Group commit
//
// Every write goes through one writer goroutine that owns the only writing
// connection: callers queue requests, and the writer runs everything queued
// (up to Options.MaxBatch) in one transaction and one fsync, then answers each
// caller. So concurrent Ingest calls share a commit, and a Complete of many
// completions is one transaction. SQLite allows one writer anyway;
// serializing in Go means no SQLITE_BUSY, and batching turns N fsyncs into
// one. Webhooks come first: the delivery pipeline's writes (claims,
// completions) queue apart and a transaction takes only one of them while
// webhooks wait. Queries use a separate pool of read-only connections, which
// WAL lets run beside the writer.
//
// # Leases
//
// Leases live in memory (leases.go): a claim writes nothing, and Complete
// finds the lease and the row's fields it needs there, so a delivery costs
// the writer one row update and its dispatch records. One process owns the
// file, so whatever was running when the previous process died is its own
// lost work and is due again by itself: on disk it never stopped being
// pending (DESIGN §9). ReleaseAll remains for running rows that builds
// before this one wrote; the shared store.Queue does not offer it because
// with several replicas it would take live replicas' work.
//
// # Migrations
//
// The schema version is PRAGMA user_version, and migrations are a list of
// SQL scripts (schema.go) that run in one transaction on the writing
// connection before the writer starts. This is a small runner of our own
// rather than github.com/pressly/goose: databases made by the first release
// already carry user_version 1 and no goose table, so they upgrade in place
// with nothing to adopt; the writer's single connection needs no pool; and
// the runner is some forty lines. Version numbers are shared with
// store/postgres (store.SchemaVersion).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rcrouter/rcrouter/internal/id"
	"github.com/rcrouter/rcrouter/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options tunes a Store; the zero value is usable.
type Options struct {
	Logger *slog.Logger // nil: discard
	// MaxBatch is the most write requests one transaction serves (group
	// commit). Default 256.
	MaxBatch int
	// QueueSize bounds the write requests waiting for the writer, in each of
	// its two queues (foreground, background). When one is full, its callers
	// block until there is room or their context ends (the webhook then
	// answers 503 and RevenueCat retries). Default 4 × MaxBatch.
	QueueSize int
	// ReadConns is the size of the read pool. Default 4.
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock held by another
	// connection (a checkpoint, or another process opening the file).
	// Default 5 s.
	BusyTimeout time.Duration
	// Now is the clock for timestamps the caller does not give (zero
	// ReceivedAt or Completion.FinishedAt). Default time.Now.
	Now func() time.Time
	// NoMigrate makes Open refuse a database whose schema is not current
	// instead of migrating it (serve --no-migrate).
	NoMigrate bool
}

// Store is the SQLite store.Store. Create it with Open.
type Store struct {
	log      *slog.Logger
	now      func() time.Time
	ids      *id.Generator
	maxBatch int

	rdb *sql.DB // read pool, query_only
	wdb *sql.DB // one connection, used only by the writer goroutine
	w   *writer
	cp  *checkpointer
	// leases is w.leases, which readers overlay on the rows they return.
	leases *leaseTable

	// sendMu guards closed and sends on reqs and bg: Close takes it
	// exclusively, so no request is queued after the writer has drained the
	// channels.
	sendMu sync.RWMutex
	closed bool
	reqs   chan *request // foreground: webhooks, admin writes, Ping
	bg     chan *request // background: the delivery pipeline, retention

	writerDone chan struct{}
	isClosed   atomic.Bool
	closeOnce  sync.Once
	closeErr   error

	commits atomic.Int64 // transactions committed by the writer

	// Test hooks, nil in production: a request was queued; Close has
	// stopped accepting requests and waits for the writer.
	onEnqueue func()
	onClosing func()
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it and its parent directories when missing) the
// database at path, brings its schema up to date (see Options.NoMigrate)
// and starts the writer. It does not release the leases a previous process
// left: see ReleaseAll.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	// The driver reads everything after '?' as its parameters.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store %s: path must not contain '?'", path)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4 * opts.MaxBatch
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	busy := opts.BusyTimeout.Milliseconds()
	// synchronous=FULL: in WAL mode NORMAL may lose the last commits on power
	// loss, and a lost commit is an event we already answered 200 for.
	// The writer checkpoints only as a safety net; the checkpointer's own
	// connection does it beside the writer (checkpoint.go).
	wdsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=wal_autocheckpoint(%d)",
		path, busy, writerAutoCheckpoint)
	rdsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=query_only(1)", path, busy)
	cdsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=synchronous(FULL)", path, busy)

	ctx := context.Background()
	wdb, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	conn, err := wdb.Conn(ctx)
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	fail := func(err error) (*Store, error) {
		_ = conn.Close()
		_ = wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if opts.NoMigrate {
		v, err := schemaVersion(ctx, conn)
		if err != nil {
			return fail(err)
		}
		if v != len(migrations) {
			return fail(fmt.Errorf("schema version is %d, this build needs %d: run rcrouter migrate", v, len(migrations)))
		}
	} else {
		from, to, err := migrate(ctx, conn)
		if err != nil {
			return fail(err)
		}
		if from != to {
			opts.Logger.Info("store schema migrated", "path", path, "from", from, "to", to)
		}
	}
	w, err := newWriter(ctx, conn)
	if err != nil {
		return fail(err)
	}

	rdb, err := sql.Open("sqlite", rdsn)
	if err != nil {
		w.close()
		return fail(err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	if err := rdb.PingContext(ctx); err != nil {
		_ = rdb.Close()
		w.close()
		return fail(err)
	}
	cp, err := newCheckpointer(cdsn, opts.Logger)
	if err != nil {
		_ = rdb.Close()
		w.close()
		return fail(err)
	}

	s := &Store{
		log:        opts.Logger,
		now:        opts.Now,
		ids:        id.NewGenerator(opts.Now, nil),
		maxBatch:   opts.MaxBatch,
		rdb:        rdb,
		wdb:        wdb,
		w:          w,
		cp:         cp,
		leases:     w.leases,
		reqs:       make(chan *request, opts.QueueSize),
		bg:         make(chan *request, opts.QueueSize),
		writerDone: make(chan struct{}),
	}
	go s.writeLoop()
	go cp.run()
	return s, nil
}

// Close stops accepting requests, lets the writer finish every request
// already queued, and closes the database. Calling it again returns the
// first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.isClosed.Store(true)
		s.sendMu.Lock()
		s.closed = true
		close(s.reqs)
		close(s.bg)
		s.sendMu.Unlock()
		if s.onClosing != nil {
			s.onClosing()
		}
		<-s.writerDone
		s.closeErr = errors.Join(s.cp.close(), s.w.close(), s.wdb.Close(), s.rdb.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("close sqlite store: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// Ping commits a real write (a heartbeat row) through the writer, so it
// fails when the file can no longer be written, and checks the read pool.
func (s *Store) Ping(ctx context.Context) error {
	at := s.now().UnixMilli()
	err := s.do(ctx, func(w *writer) error {
		if _, err := w.st.heartbeat.ExecContext(w.ctx, at); err != nil {
			return fmt.Errorf("write heartbeat: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping read pool: %w", err)
	}
	return nil
}

// readable reports ErrClosed once Close has begun, so queries do not surface
// the pool's own "database is closed".
func (s *Store) readable() error {
	if s.isClosed.Load() {
		return store.ErrClosed
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMs(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullMs(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMs(v.Int64)
	return &t
}
