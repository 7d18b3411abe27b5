package server

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// The connection cap. At most max connections are served at once (each is a
// file descriptor); a new one waits for a free slot. When the cap is full,
// the connection idle the longest is closed to make room (a keep-alive
// client reconnects), so idle connections can never lock RevenueCat out.
// Past half full, idle connections are closed after PressureIdleTimeout
// instead of the usual IdleTimeout. A reserve of max/8 slots is kept from
// requests other than the webhook and health checks (the admin API, the
// UI, SSE streams): past max-reserve of those at once they get 503, so the
// webhook and /readyz still find a slot when the rest are busy.
const (
	// DefaultMaxConnections caps the default derived from the fd limit.
	DefaultMaxConnections = 10000
	// PressureIdleTimeout is the idle keep-alive timeout past half full.
	PressureIdleTimeout = 5 * time.Second
)

// limiter is a listener with the connection cap.
type limiter struct {
	net.Listener
	max, reserve int
	pressureIdle time.Duration
	slots        chan struct{} // one token per open connection
	wentIdle     chan struct{} // a connection went idle: one may be evicted
	closed       chan struct{}
	closeOnce    sync.Once

	mu   sync.Mutex
	idle map[*limitedConn]time.Time // connections waiting for their next request

	others  atomic.Int64 // requests in flight outside the reserve's paths
	peak    atomic.Int64 // most connections open at once (tests, metrics)
	evicted atomic.Int64
}

func newLimiter(l net.Listener, n int, pressureIdle time.Duration) *limiter {
	return &limiter{
		Listener:     l,
		max:          n,
		reserve:      max(2, n/8),
		pressureIdle: pressureIdle,
		slots:        make(chan struct{}, n),
		wentIdle:     make(chan struct{}, 1),
		closed:       make(chan struct{}),
		idle:         map[*limitedConn]time.Time{},
	}
}

// Accept hands out a connection only with a slot for it. While the cap is
// full it holds the one connection it took from the kernel (so at most
// max+1 client sockets are open) and closes the longest idle connection,
// now or as soon as one goes idle, to make room.
func (l *limiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return l.admitted(c), nil
		default:
		}
		if l.evictIdle() {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return l.admitted(c), nil
		case <-l.wentIdle:
		case <-l.closed:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
}

func (l *limiter) admitted(c net.Conn) net.Conn {
	if n := int64(len(l.slots)); n > l.peak.Load() {
		l.peak.Store(n) // only Accept's goroutine raises it
	}
	return &limitedConn{Conn: c, l: l}
}

func (l *limiter) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// evictIdle closes the connection idle the longest, if any; its slot is
// free when it returns true.
func (l *limiter) evictIdle() bool {
	l.mu.Lock()
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest != nil {
		delete(l.idle, oldest)
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	l.evicted.Add(1)
	_ = oldest.Close()
	return true
}

func (l *limiter) underPressure() bool { return len(l.slots)*2 > l.max }

// connState is the http.Server hook that tells the limiter which
// connections are idle.
func (l *limiter) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		l.idle[c] = time.Now()
		c.isIdle.Store(true)
		select {
		case l.wentIdle <- struct{}{}:
		default:
		}
		return
	}
	delete(l.idle, c)
	c.isIdle.Store(false)
}

// admitOther counts one request outside the reserve's paths, or refuses it
// when those already fill everything but the reserve.
func (l *limiter) admitOther() (release func(), ok bool) {
	if l.others.Add(1) > int64(l.max-l.reserve) {
		l.others.Add(-1)
		return nil, false
	}
	return func() { l.others.Add(-1) }, true
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	l         *limiter
	isIdle    atomic.Bool
	closeOnce sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}

// SetReadDeadline shortens the idle keep-alive deadline net/http sets after
// a request when the server is more than half full.
func (c *limitedConn) SetReadDeadline(t time.Time) error {
	if c.isIdle.Load() && c.l.underPressure() {
		if short := time.Now().Add(c.l.pressureIdle); t.IsZero() || t.After(short) {
			t = short
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// maxConnections resolves server.max_connections: 0 means half the file
// descriptor limit (the rest is for the store, outbound connections and
// the process itself), at most DefaultMaxConnections; a configured value is
// kept below the limit as well.
func maxConnections(configured int, log func(msg string, args ...any)) int {
	limit := fdLimit()
	switch {
	case configured <= 0 && limit > 0:
		return max(minConnections, min(limit/2, DefaultMaxConnections))
	case configured <= 0:
		return DefaultMaxConnections
	case limit > 0 && configured > limit-64:
		n := max(minConnections, limit-64)
		log("server.max_connections is above the file descriptor limit; lowered", "configured", configured, "fd_limit", limit, "max_connections", n)
		return n
	}
	return max(minConnections, configured)
}

// minConnections keeps a reserve and some room besides it.
const minConnections = 16

// priorityPath reports whether a request may use the reserve.
func (s *Server) priorityPath(path string) bool {
	return path == s.opts.WebhookPath || path == "/readyz" || path == "/healthz"
}

// reserveGuard refuses requests outside the reserve's paths when they would
// eat into it.
func (s *Server) reserveGuard(c *gin.Context) {
	l := s.limit.Load()
	if l == nil || s.priorityPath(c.Request.URL.Path) {
		c.Next()
		return
	}
	release, ok := l.admitOther()
	if !ok {
		c.Header("Retry-After", "5")
		c.Header("Connection", "close")
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "server busy: too many connections; retry later"})
		return
	}
	defer release()
	c.Next()
}
