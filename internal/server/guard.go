package server

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// The admin token throttle. A client address that presents a wrong admin
// token ClientFailures times within FailureWindow is refused (429) until the
// window ends; GlobalFailures wrong tokens from everyone together refuse
// every client, so that many addresses cannot guess in parallel. While
// refused, a request is answered before its token is compared: the right
// token gets 429 as well, otherwise the throttle would still tell a guesser
// when it guessed right.
const (
	ClientFailures = 10
	GlobalFailures = 100
	FailureWindow  = time.Minute
)

// window counts failures from its start for FailureWindow.
type window struct {
	start    time.Time
	failures int
	refused  int // requests answered 429 in this window
}

func (w *window) expired(now time.Time) bool { return !now.Before(w.start.Add(FailureWindow)) }
func (w *window) blocked(limit int) bool     { return w.failures >= limit }

// guard throttles failed admin authentications. It logs a summary: the first
// failure of a window, the moment a throttle starts and, when a throttled
// window is over, how many requests it refused; never a line per attempt.
type guard struct {
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	clients map[string]*window
	global  window
}

func newGuard(now func() time.Time, log *slog.Logger) *guard {
	return &guard{now: now, log: log, clients: map[string]*window{}}
}

// clientKey is the address the throttle counts, an IPv6 address by its /64
// (which one host usually owns whole).
func clientKey(addr netip.Addr) string {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.Unmap().String()
}

// wait reports how long the client must wait before its token is looked at,
// and counts the refusal; zero means go ahead.
func (g *guard) wait(key string) time.Duration {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	var w *window
	switch c := g.clients[key]; {
	case g.global.blocked(GlobalFailures):
		w = &g.global
	case c != nil && c.blocked(ClientFailures):
		w = c
	default:
		return 0
	}
	w.refused++
	return w.start.Add(FailureWindow).Sub(now)
}

// failed counts one wrong token from the client.
func (g *guard) failed(key string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	c := g.clients[key]
	if c == nil {
		c = &window{start: now}
		g.clients[key] = c
		g.log.Warn("admin authentication failed", "remote", key)
	}
	if g.global.failures == 0 {
		g.global.start = now
	}
	c.failures++
	g.global.failures++
	if c.failures == ClientFailures {
		g.log.Warn("admin authentication throttled", "remote", key, "failures", c.failures,
			"retry_after", c.start.Add(FailureWindow).Sub(now).Round(time.Second))
	}
	if g.global.failures == GlobalFailures {
		g.log.Warn("admin authentication throttled for every client", "failures", g.global.failures,
			"clients", len(g.clients), "retry_after", g.global.start.Add(FailureWindow).Sub(now).Round(time.Second))
	}
}

// succeeded forgets the client's failures: the operator got it right.
func (g *guard) succeeded(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.clients, key)
}

// expire ends the windows that are over and logs what throttled ones
// refused. The client map holds at most GlobalFailures entries per window:
// a new entry needs a failure, and past that many every client waits.
func (g *guard) expire(now time.Time) {
	for key, c := range g.clients {
		if c.expired(now) {
			if c.refused > 0 {
				g.log.Info("admin authentication throttle ended", "remote", key, "failures", c.failures, "refused", c.refused)
			}
			delete(g.clients, key)
		}
	}
	if g.global.failures > 0 && g.global.expired(now) {
		if g.global.refused > 0 {
			g.log.Info("admin authentication throttle for every client ended", "failures", g.global.failures, "refused", g.global.refused)
		}
		g.global = window{}
	}
}
