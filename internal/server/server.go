// Package server is rcrouter's HTTP face: the RevenueCat webhook endpoint,
// health and metrics, the admin API, the live stream and the UI. It is the
// only package that uses gin. Everything it does beyond HTTP it asks of a
// Backend, which internal/app implements.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/store"
)

// Backend is what the server needs from the rest of the process.
type Backend interface {
	// Accept routes and durably stores one decoded event. It returns
	// created=false for an event id already stored.
	Accept(ctx context.Context, e *event.Event) (Accepted, error)
	// Destinations lists every configured destination (and any with queued
	// deliveries but no longer configured) with state and counts.
	Destinations(ctx context.Context) ([]DestinationStatus, error)
	// Retry makes one delivery due now.
	Retry(ctx context.Context, deliveryID string) error
	Replay(ctx context.Context, destination string, f store.ReplayFilter, dryRun bool) (int, error)
	SendTest(ctx context.Context, destination string) (eventID string, err error)
	Pause(ctx context.Context, destination string) error
	Resume(ctx context.Context, destination string) error
	// Reload applies the config file again. Its error says why the new
	// config was refused (a *config.Errors for problems in the file); the
	// old config keeps running.
	Reload(ctx context.Context) error
	// Ready reports why the process cannot take traffic, or nil.
	Ready(ctx context.Context) error
}

// ReplicaLister lists the replicas that share the store (GET
// /api/v1/replicas, DESIGN §8): several on PostgreSQL, this process alone on
// SQLite.
type ReplicaLister interface {
	Replicas(ctx context.Context) ([]store.Replica, error)
}

// Accepted is the answer to one accepted webhook.
type Accepted struct {
	Created      bool
	Destinations []string
}

// DestinationStatus is one row of GET /api/v1/destinations.
type DestinationStatus struct {
	Name          string     `json:"name"`
	Type          string     `json:"type"`
	State         string     `json:"state"`
	Pending       int        `json:"pending"`
	Dead          int        `json:"dead"`
	Delivered24h  int        `json:"delivered_24h"`
	Failed24h     int        `json:"failed_24h"`
	LastSuccessAt *time.Time `json:"last_success_at"`
	LastError     string     `json:"last_error"`
}

// Settings are the reloadable parts of the server's configuration.
type Settings struct {
	Authorization        []secret.Secret
	SigningSecret        secret.Secret
	AllowUnauthenticated bool
	AdminToken           secret.Secret
	MaxBodyBytes         int64
	// TrustedProxies are the peers whose X-Forwarded-Proto and
	// X-Forwarded-For are believed (server.trusted_proxies).
	TrustedProxies []netip.Prefix
}

// Options configure a Server.
type Options struct {
	Listen      string
	WebhookPath string
	// MaxConnections caps open client connections (server.max_connections);
	// 0 derives it from the file descriptor limit.
	MaxConnections int
	// PressureIdleTimeout replaces IdleTimeout past half the cap; default
	// PressureIdleTimeout.
	PressureIdleTimeout time.Duration
	// StreamWriteTimeout bounds one SSE write; default StreamWriteTimeout.
	StreamWriteTimeout time.Duration
	Settings           Settings
	Backend            Backend
	Store              store.Reader
	Hub                *Hub
	Replicas           ReplicaLister // nil: GET /api/v1/replicas answers 404
	Logger             *slog.Logger
	Registry           *prometheus.Registry // private registry served on /metrics
	// Clock checks signature timestamps, paces stream heartbeats and times
	// the login throttle and sessions (default real time).
	Clock clock.Clock
}

// Server is the HTTP server.
type Server struct {
	opts     Options
	settings atomic.Pointer[Settings]
	draining atomic.Bool
	engine   *gin.Engine
	http     *http.Server
	guard    *guard
	sessions sessions
	limit    atomic.Pointer[limiter]
	received *prometheus.CounterVec
}

// New builds the server and its routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Hub == nil {
		opts.Hub = NewHub()
	}
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = StreamWriteTimeout
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{opts: opts, sessions: sessions{revoked: map[string]time.Time{}}}
	s.guard = newGuard(opts.Clock.Now, opts.Logger)
	s.SetSettings(opts.Settings)
	s.received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rcrouter_webhooks_received_total",
		Help: "RevenueCat webhooks received, by outcome (accepted, duplicate, unauthorized, bad_request, too_large, unavailable).",
	}, []string{"outcome"})
	opts.Registry.MustRegister(s.received)

	e := gin.New()
	e.Use(gin.Recovery(), s.reserveGuard)
	e.HandleMethodNotAllowed = true
	e.POST(opts.WebhookPath, s.webhook)
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry})))
	s.adminRoutes(e.Group("/api/v1", s.requireAdmin))
	s.engine = e
	s.http = &http.Server{
		Addr:    opts.Listen,
		Handler: e,
		// Slowloris protection: headers and bodies must arrive in bounded
		// time. RevenueCat bodies are small; 10 s is generous.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No WriteTimeout: the SSE stream is long-lived. Handlers bound their
		// own work with the request context.
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Backend returns the backend the server was built with (the UI uses it).
func (s *Server) Backend() Backend { return s.opts.Backend }

// Store returns the store the server reads from.
func (s *Server) Store() store.Reader { return s.opts.Store }

// Replicas returns what lists the replicas, or nil.
func (s *Server) Replicas() ReplicaLister { return s.opts.Replicas }

// Hub returns the live dispatch hub.
func (s *Server) Hub() *Hub { return s.opts.Hub }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.opts.Logger }

// MountUI serves h under /ui/ (and redirects / there). Call it before Serve.
// The UI does its own authentication with CheckAdmin and the session cookie.
func (s *Server) MountUI(h http.Handler) {
	s.engine.Any("/ui/*path", gin.WrapH(h))
	s.engine.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/ui/") })
}

// SetSettings swaps the reloadable settings atomically.
func (s *Server) SetSettings(st Settings) {
	if st.MaxBodyBytes <= 0 {
		st.MaxBodyBytes = 1 << 20
	}
	s.settings.Store(&st)
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.engine }

// Serve accepts connections on l until Shutdown, under the connection cap.
// Call it once.
func (s *Server) Serve(l net.Listener) error {
	pressureIdle := s.opts.PressureIdleTimeout
	if pressureIdle <= 0 {
		pressureIdle = PressureIdleTimeout
	}
	n := maxConnections(s.opts.MaxConnections, s.opts.Logger.Warn)
	lim := newLimiter(l, n, pressureIdle)
	s.limit.Store(lim)
	s.http.ConnState = lim.connState
	s.opts.Logger.Info("connection cap", "max_connections", n, "reserve", lim.reserve)
	err := s.http.Serve(lim)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Drain makes /readyz fail so load balancers stop sending traffic, while the
// server keeps answering. Shutdown follows.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends. Open SSE streams are closed through the hub.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.opts.Hub.Close()
	err := s.http.Shutdown(ctx)
	if err != nil {
		// Out of time: drop what is left (a stuck stream, a client that
		// does not read) rather than hold the rest of shutdown.
		_ = s.http.Close()
	}
	return err
}

func (s *Server) readyz(c *gin.Context) {
	if s.draining.Load() {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
	if err := s.opts.Backend.Ready(c.Request.Context()); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
