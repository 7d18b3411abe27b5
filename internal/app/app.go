// Package app wires rcrouter together and owns its lifecycle: it is the one
// place that knows every concrete type (DESIGN §2).
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/delivery"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
	"github.com/rcrouter/rcrouter/router"
)

// Options configure an App.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// Getenv expands ${VAR} in the config; default os.LookupEnv.
	Getenv  func(string) (string, bool)
	Version string
	// Listener, if set, is used instead of listening on server.listen (tests
	// pass a 127.0.0.1:0 listener).
	Listener net.Listener
	// UI builds the web UI handler, if any; it is mounted under /ui/.
	UI func(s *server.Server) http.Handler
	// ShutdownTimeout bounds graceful shutdown (default 25 s).
	ShutdownTimeout time.Duration
	// DrainDelay is how long /readyz fails before the listener closes, so a
	// load balancer stops sending traffic first (default 0: close at once;
	// RevenueCat retries a refused connection, so nothing is lost either way).
	DrainDelay time.Duration
	// NoMigrate makes start-up refuse a store whose schema is not current
	// instead of migrating it (serve --no-migrate; rcrouter migrate does it).
	NoMigrate bool
	// Clock is the one time of the process (default real time): the
	// scheduler, ingest timestamps, retry and replay, retention, stats
	// windows, reload times and the drain delay all read it, so a test with a
	// fake clock controls them all.
	Clock clock.Clock
}

// App is a running rcrouter process.
type App struct {
	opts    Options
	log     *slog.Logger
	store   store.Store
	pg      *postgres.Store // the same store when it is PostgreSQL (replicas), else nil
	replica string          // server.replica, or <hostname>-<pid>
	started time.Time
	leaving atomic.Bool // shutdown began: take no housekeeping role
	sched   *delivery.Scheduler
	hub     *server.Hub
	srv     *server.Server
	reg     *prometheus.Registry
	metrics *appMetrics

	cur atomic.Pointer[runtime]
	// decisions are reused routing results: Route allocates one per event
	// (50 routes: 2.3 KB), RouteInto into a pooled one does not.
	decisions sync.Pool
	// accepting counts the webhooks in Accept: the scheduler yields while
	// it is high (delivery.BusyWebhooks).
	accepting atomic.Int64
	reloadMu  sync.Mutex
	reload    atomic.Pointer[ReloadStatus]

	// retiring adapters are closed once in-flight attempts with them ended,
	// or when the process stops (done).
	retireWG sync.WaitGroup
	done     chan struct{}
}

// ReloadStatus says how the last reload went.
type ReloadStatus struct {
	At      time.Time `json:"at"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Trigger string    `json:"trigger"`
}

// New loads the config, opens the store and builds every part. Nothing runs
// until Run.
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Getenv == nil {
		opts.Getenv = os.LookupEnv
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	cfg, err := config.Load(opts.ConfigPath, opts.Getenv, Types())
	if err != nil {
		return nil, err
	}
	a := &App{opts: opts, log: opts.Logger, hub: server.NewHub(), reg: prometheus.NewRegistry(), done: make(chan struct{}),
		replica: replicaName(cfg), started: opts.Clock.Now()}
	a.log = a.log.With("replica", a.replica)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = newAppMetrics(a.reg)

	st, err := openStore(cfg, a.log, opts.Clock, storeMode{noMigrate: opts.NoMigrate, startUp: true, replica: a.replica})
	if err != nil {
		return nil, err
	}
	a.store = st
	sopts := delivery.SchedulerOptions{
		Logger:     a.log,
		Clock:      opts.Clock,
		Metrics:    delivery.NewMetrics(a.reg),
		Decode:     revenuecat.Decode,
		OnDispatch: a.hub.Publish,
		Owner:      a.replica,
		Accepting:  func() int { return int(a.accepting.Load()) },
	}
	if pg, ok := st.(*postgres.Store); ok {
		// Replicas share the rate limits, breakers and pauses, and hear each
		// other's wake-ups. The live feed comes from the store, which has
		// every replica's records, this one's included: publishing our own
		// as well would show them twice.
		a.pg = pg
		sopts.Rate, sopts.Breaker, sopts.Signals = pg, pg, pg
		sopts.OnDispatch = nil
	}
	a.sched = delivery.NewScheduler(st, sopts)
	rt, err := a.build(cfg, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.cur.Store(rt)
	now := opts.Clock.Now()
	a.metrics.reloaded(true, now)
	a.reload.Store(&ReloadStatus{At: now, OK: true, Trigger: "start"})
	a.reg.MustRegister(&queueCollector{app: a})

	a.srv = server.New(server.Options{
		Listen:         cfg.Server.Listen,
		WebhookPath:    cfg.Server.WebhookPath,
		MaxConnections: cfg.Server.MaxConnections,
		Settings:       settings(cfg),
		Backend:        a,
		Store:          st,
		Hub:            a.hub,
		Replicas:       a,
		Logger:         a.log,
		Registry:       a.reg,
		Clock:          opts.Clock,
	})
	if opts.UI != nil {
		a.srv.MountUI(opts.UI(a.srv))
	}
	return a, nil
}

// storeMode says what opening the store is for.
type storeMode struct {
	noMigrate bool // refuse an outdated schema instead of migrating
	// startUp: the store serves this process, which takes over what a
	// single-process store's previous process left in flight.
	startUp bool
	replica string // this process's name in a shared store
}

// openTimeout bounds connecting to a database server at start-up.
const openTimeout = 30 * time.Second

func openStore(cfg *config.Config, log *slog.Logger, clk clock.Clock, mode storeMode) (store.Store, error) {
	switch cfg.Storage.Driver {
	case "postgres":
		// Open migrates under the database's lock (replicas that start
		// together wait for each other) unless noMigrate. No release of
		// in-flight work at start-up: other live replicas hold leases; a
		// dead one's expire and the reaper returns them.
		ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
		defer cancel()
		st, err := postgres.Open(ctx, postgres.Options{
			DSN: cfg.Storage.DSN.Value(), MaxConns: int32(cfg.Storage.MaxConns), Replica: mode.replica,
			Logger: log, NoMigrate: mode.noMigrate, Now: clk.Now,
		})
		if err != nil {
			return nil, err // names the server, never the password
		}
		return st, nil
	case "sqlite":
		st, err := sqlite.Open(cfg.Storage.Path, sqlite.Options{Logger: log, Now: clk.Now, NoMigrate: mode.noMigrate})
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Storage.Path, err)
		}
		if !mode.startUp {
			return st, nil
		}
		// A single process owns the SQLite file: whatever was in flight when
		// the previous process died is due again now.
		n, err := st.ReleaseAll(context.Background(), clk.Now())
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("release in-flight deliveries: %w", err)
		}
		if n > 0 {
			log.Info("deliveries in flight at the last stop are due again", "count", n)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("storage.driver %q is not available in this build (use sqlite)", cfg.Storage.Driver)
	}
}

func settings(cfg *config.Config) server.Settings {
	return server.Settings{
		Authorization:        cfg.Inbound.Authorization,
		SigningSecret:        cfg.Inbound.SigningSecret,
		AllowUnauthenticated: cfg.Inbound.AllowUnauthenticated,
		AdminToken:           cfg.Admin.Token,
		MaxBodyBytes:         cfg.Server.MaxBodyBytes,
		TrustedProxies:       trustedProxies(cfg.Server.TrustedProxies),
	}
}

// trustedProxies parses server.trusted_proxies (validate has checked them).
func trustedProxies(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := config.ParseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Server returns the HTTP server (tests use its Handler).
func (a *App) Server() *server.Server { return a.srv }

// Store returns the store.
func (a *App) Store() store.Store { return a.store }

// Config returns the config in force.
func (a *App) Config() *config.Config { return a.cur.Load().cfg }

// LastReload returns how the last reload went.
func (a *App) LastReload() ReloadStatus { return *a.reload.Load() }

// Run serves until ctx is done, then shuts down gracefully: readiness fails
// first, the listener closes, in-flight deliveries finish or are released,
// and the store closes. It returns nil after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	l := a.opts.Listener
	if l == nil {
		var err error
		l, err = net.Listen("tcp", a.Config().Server.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	a.log.Info("rcrouter started", "listen", l.Addr().String(), "webhook_path", a.Config().Server.WebhookPath,
		"store", a.Config().Storage.Driver, "destinations", len(a.Config().Names), "version", a.opts.Version)

	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- a.srv.Serve(l) }()
	go func() { defer wg.Done(); a.sched.Run(runCtx) }()
	if a.pg != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.forwardFeed(runCtx) }()
		go func() { defer wg.Done(); a.replicaLoop(runCtx) }()
	} else {
		go func() { defer wg.Done(); a.maintain(runCtx) }()
	}
	watchStop := a.watchConfig(runCtx)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if runErr != nil {
			a.log.Error("http server failed", "err", runErr)
		}
	}

	a.log.Info("shutting down")
	a.leaving.Store(true)
	deadline, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
	defer cancel()
	a.srv.Drain()
	if a.opts.DrainDelay > 0 {
		a.log.Info("draining: /readyz fails while connections finish", "for", a.opts.DrainDelay)
		t := a.opts.Clock.NewTimer(a.opts.DrainDelay)
		select {
		case <-t.C():
		case <-deadline.Done():
		}
		t.Stop()
	}
	// Each phase has its own share of what is left: HTTP at most half, so
	// that streams or slow clients cannot spend the scheduler's time to
	// finish or release its in-flight attempts.
	left := time.Until(deadlineOf(deadline))
	httpCtx, httpCancel := context.WithTimeout(deadline, left/2)
	if err := a.srv.Shutdown(httpCtx); err != nil {
		a.log.Warn("http shutdown", "err", err, "share", (left / 2).Round(time.Millisecond))
	}
	httpCancel()
	if err := a.sched.Shutdown(deadline); err != nil {
		a.log.Warn("scheduler shutdown", "err", err)
	}
	stop()
	watchStop()
	wg.Wait()
	close(a.done)
	a.closeAdapters(a.cur.Load())
	a.retireWG.Wait()
	if err := a.store.Close(); err != nil {
		a.log.Warn("store close", "err", err)
	}
	a.log.Info("stopped")
	return runErr
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// stopping is closed when the process stops.
func (a *App) stopping() <-chan struct{} { return a.done }

// Close releases what New opened, for an App that never ran.
func (a *App) Close() error {
	close(a.done)
	a.closeAdapters(a.cur.Load())
	a.retireWG.Wait()
	return a.store.Close()
}

// maintain runs the periodic jobs: dispatch log retention.
func (a *App) maintain(ctx context.Context) {
	t := a.opts.Clock.NewTimer(maintainEvery)
	defer t.Stop()
	for {
		a.purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			t.Reset(maintainEvery)
		}
	}
}

// maintainEvery is how often retention runs.
const maintainEvery = time.Minute

// purgeBatch bounds one delete, so retention never holds the writer long.
const purgeBatch = 1000

func (a *App) purge(ctx context.Context) {
	retention := a.Config().Storage.Retention
	if retention <= 0 {
		return
	}
	before := a.opts.Clock.Now().Add(-retention)
	for ctx.Err() == nil {
		n, err := a.store.Purge(ctx, before, purgeBatch)
		if err != nil {
			a.log.Warn("retention purge failed", "err", err)
			return
		}
		if n < purgeBatch {
			return
		}
	}
}

// Accept implements server.Backend: route, store durably, wake the workers.
func (a *App) Accept(ctx context.Context, e *event.Event) (server.Accepted, error) {
	a.accepting.Add(1)
	defer a.accepting.Add(-1)
	rt := a.cur.Load()
	dec, _ := a.decisions.Get().(*router.Decision)
	if dec == nil {
		dec = new(router.Decision)
	}
	defer a.decisions.Put(dec) // nothing below keeps its slices
	rt.routes.RouteInto(dec, e)
	names := make([]string, 0, len(dec.Destinations))
	deliveries := make([]store.NewDelivery, 0, len(dec.Destinations))
	for _, d := range dec.Destinations {
		names = append(names, d.Destination)
		deliveries = append(deliveries, store.NewDelivery{Destination: d.Destination, Route: d.Route})
	}
	if dec.Verdicts == nil {
		dec.Verdicts = []router.Verdict{} // stored as [], like Route's result, not null
	}
	verdicts, err := json.Marshal(dec.Verdicts)
	if err != nil {
		return server.Accepted{}, err
	}
	created, err := a.store.Ingest(ctx, store.NewEvent{
		ID: e.ID, Type: e.Type, ReceivedAt: a.opts.Clock.Now().UTC(), Body: e.Raw, Routes: verdicts, Deliveries: deliveries,
	})
	if err != nil {
		return server.Accepted{}, err
	}
	if created {
		a.sched.Wake(names...)
	}
	return server.Accepted{Created: created, Destinations: names}, nil
}

// Destinations implements server.Backend.
func (a *App) Destinations(ctx context.Context) ([]server.DestinationStatus, error) {
	rt := a.cur.Load()
	stats, err := a.store.Stats(ctx, a.opts.Clock.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	out := make([]server.DestinationStatus, 0, len(rt.cfg.Names))
	for _, name := range rt.cfg.Names {
		out = append(out, status(name, rt.cfg.Destinations[name].Type, a.sched.State(name), stats[name]))
	}
	// Deliveries whose destination left the config are shown, never dropped.
	var removed []string
	for name := range stats {
		if _, ok := rt.cfg.Destinations[name]; !ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	for _, name := range removed {
		out = append(out, status(name, "removed", "removed", stats[name]))
	}
	return out, nil
}

func status(name, typ, state string, st store.DestinationStats) server.DestinationStatus {
	return server.DestinationStatus{
		Name: name, Type: typ, State: state, Pending: st.Pending, Dead: st.Dead,
		Delivered24h: st.Delivered, Failed24h: st.Failed, LastSuccessAt: st.LastSuccessAt, LastError: st.LastError,
	}
}

func (a *App) knownDestination(name string) error {
	if _, ok := a.cur.Load().cfg.Destinations[name]; !ok {
		return fmt.Errorf("%w: unknown destination %q", store.ErrNotFound, name)
	}
	return nil
}

// Retry implements server.Backend.
func (a *App) Retry(ctx context.Context, deliveryID string) error {
	d, err := a.store.Delivery(ctx, deliveryID)
	if err != nil {
		return err
	}
	if err := a.store.Retry(ctx, deliveryID, a.opts.Clock.Now()); err != nil {
		return err
	}
	a.sched.Wake(d.Destination)
	return nil
}

// Replay implements server.Backend.
func (a *App) Replay(ctx context.Context, destination string, f store.ReplayFilter, dryRun bool) (int, error) {
	if err := a.knownDestination(destination); err != nil {
		return 0, err
	}
	f.Destination = destination
	n, err := a.store.Replay(ctx, f, a.opts.Clock.Now(), dryRun)
	if err == nil && !dryRun && n > 0 {
		a.sched.Wake(destination)
	}
	return n, err
}

// SendTest implements server.Backend: a synthetic TEST event for one
// destination only, stored and delivered like any other.
func (a *App) SendTest(ctx context.Context, destination string) (string, error) {
	if err := a.knownDestination(destination); err != nil {
		return "", err
	}
	var b [8]byte
	rand.Read(b[:])
	id := "rcrouter-test-" + hex.EncodeToString(b[:])
	now := a.opts.Clock.Now()
	e, err := revenuecat.Decode(revenuecat.TestEventBody(id, now))
	if err != nil {
		return "", err
	}
	verdicts, _ := json.Marshal([]router.Verdict{{Name: "send test event", Matched: true, Reason: "sent from the admin API to " + destination}})
	if _, err := a.store.Ingest(ctx, store.NewEvent{
		ID: e.ID, Type: e.Type, ReceivedAt: now.UTC(), Body: e.Raw, Routes: verdicts,
		Deliveries: []store.NewDelivery{{Destination: destination, Route: "test"}},
	}); err != nil {
		return "", err
	}
	a.sched.Wake(destination)
	return id, nil
}

// Pause implements server.Backend.
func (a *App) Pause(ctx context.Context, destination string) error {
	if err := a.knownDestination(destination); err != nil {
		return err
	}
	return a.sched.Pause(ctx, destination)
}

// Resume implements server.Backend.
func (a *App) Resume(ctx context.Context, destination string) error {
	if err := a.knownDestination(destination); err != nil {
		return err
	}
	return a.sched.Resume(ctx, destination)
}

// Ready implements server.Backend.
func (a *App) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("store not writable: %w", err)
	}
	return nil
}

// Reload implements server.Backend.
func (a *App) Reload(ctx context.Context) error { return a.ReloadFrom("api") }

// ReloadFrom loads the config file again and swaps it in atomically. A bad
// config is refused whole; the old one keeps running. The error is the
// refusal as is (a *config.Errors for problems in the file), whatever the
// trigger: mapping it to an HTTP status is the API's business.
func (a *App) ReloadFrom(trigger string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	now := a.opts.Clock.Now()
	err := a.reloadLocked()
	st := &ReloadStatus{At: now, OK: err == nil, Trigger: trigger}
	if err != nil {
		st.Error = err.Error()
		a.log.Error("config reload refused; the previous config keeps running", "trigger", trigger, "err", err)
	} else {
		a.log.Info("config reloaded", "trigger", trigger, "destinations", len(a.Config().Names), "routes", len(a.Config().Routes))
	}
	a.reload.Store(st)
	a.metrics.reloaded(err == nil, now)
	return err
}

func (a *App) reloadLocked() error {
	cfg, err := config.Load(a.opts.ConfigPath, a.opts.Getenv, Types())
	if err != nil {
		return err
	}
	old := a.cur.Load()
	if cfg.Storage != old.cfg.Storage || cfg.Server.Listen != old.cfg.Server.Listen || cfg.Server.WebhookPath != old.cfg.Server.WebhookPath {
		a.log.Warn("server.listen, server.webhook_path and storage changes take effect at the next restart")
		cfg.Storage, cfg.Server.Listen, cfg.Server.WebhookPath = old.cfg.Storage, old.cfg.Server.Listen, old.cfg.Server.WebhookPath
	}
	rt, err := a.build(cfg, old)
	if err != nil {
		return err
	}
	a.cur.Store(rt)
	a.srv.SetSettings(settings(cfg))
	a.retire(old, rt)
	return nil
}
