package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// SessionCookie holds the UI session: "<id>.<issued unix>.<mac>", the mac an
// HMAC under the admin token. Any replica can check it without shared state,
// rotating the token ends every session, it expires SessionMaxAge after
// login, and logout revokes its id (EndSession).
const SessionCookie = "rcrouter_session"

// SessionMaxAge keeps the operator logged in for a month: the token is asked
// once.
const SessionMaxAge = 30 * 24 * time.Hour

// CSRFHeader must accompany every state-changing request authenticated by
// the session cookie (the UI's fetch calls and forms send it).
const CSRFHeader = "X-CSRF-Token"

// derive returns hex(HMAC-SHA256(token, purpose)).
func derive(token secret.Secret, purpose string) string {
	mac := hmac.New(sha256.New, []byte(token.Value()))
	mac.Write([]byte(purpose))
	return hex.EncodeToString(mac.Sum(nil))
}

// SessionValue is the cookie value of session id issued at issued (unix
// seconds) under token.
func SessionValue(token secret.Secret, id string, issued int64) string {
	stamp := strconv.FormatInt(issued, 10)
	return id + "." + stamp + "." + derive(token, "rcrouter session v2|"+id+"|"+stamp)
}

// parseSession returns the id and issue time of a well-formed cookie value
// whose mac matches token.
func parseSession(token secret.Secret, v string) (id string, issued int64, ok bool) {
	id, rest, ok1 := strings.Cut(v, ".")
	stamp, _, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(stamp, 10, 64)
	if !ok1 || !ok2 || err != nil || id == "" {
		return "", 0, false
	}
	return id, n, equal(v, SessionValue(token, id, n))
}

// sessions remembers revoked session ids until their cookies would have
// expired anyway. Only a signed-in operator can revoke (logout needs the
// session and the CSRF token), so the set stays small.
type sessions struct {
	mu      sync.Mutex
	revoked map[string]time.Time // id → when its cookie expires
}

// NewSession starts a UI session and returns its cookie value.
func (s *Server) NewSession() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return SessionValue(s.AdminToken(), hex.EncodeToString(b[:]), s.opts.Clock.Now().Unix())
}

// EndSession revokes the session r carries, on this process: its cookie is
// refused from now on, even if the browser keeps it.
func (s *Server) EndSession(r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return
	}
	id, issued, ok := parseSession(s.AdminToken(), c.Value)
	if !ok {
		return
	}
	now := s.opts.Clock.Now()
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	for k, until := range s.sessions.revoked {
		if now.After(until) {
			delete(s.sessions.revoked, k)
		}
	}
	s.sessions.revoked[id] = time.Unix(issued, 0).Add(SessionMaxAge)
}

// validSession reports whether v is a live, unrevoked session cookie.
func (s *Server) validSession(token secret.Secret, v string) bool {
	id, issued, ok := parseSession(token, v)
	if !ok {
		return false
	}
	if s.opts.Clock.Now().After(time.Unix(issued, 0).Add(SessionMaxAge)) {
		return false
	}
	s.sessions.mu.Lock()
	_, revoked := s.sessions.revoked[id]
	s.sessions.mu.Unlock()
	return !revoked
}

// CSRFToken is the anti-CSRF token the UI embeds in its pages.
func CSRFToken(token secret.Secret) string { return derive(token, "rcrouter csrf v1") }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// AdminAuth reports whether r carries the admin token, either as
// "Authorization: Bearer <token>" or as a live UI session cookie; for the
// cookie, unsafe methods also need the CSRF header. It is CheckAdmin without
// the wait: every answer that depends on the token goes through the
// throttle, or that answer would be a free guessing oracle.
func (s *Server) AdminAuth(r *http.Request) bool {
	ok, _ := s.CheckAdmin(r)
	return ok
}

// adminAuth also reports whether r presented a token that was wrong: that
// is what the throttle counts. A wrong session cookie is not counted (it is
// a 256-bit mac, not worth guessing; a stale one is an operator's browser).
func (s *Server) adminAuth(r *http.Request) (ok, wrongToken bool) {
	token := s.AdminToken()
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		if token == "" {
			return false, false
		}
		ok := SameSecret(strings.TrimPrefix(h, "Bearer "), token.Value())
		return ok, !ok
	}
	if token == "" {
		return false, false
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || !s.validSession(token, c.Value) {
		return false, false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true, false
	}
	return equal(r.Header.Get(CSRFHeader), CSRFToken(token)), false
}

// CheckAdmin is AdminAuth under the failure throttle: wait > 0 means r's
// client (or every client) is throttled and must be answered 429 with
// Retry-After, without its token having been looked at.
func (s *Server) CheckAdmin(r *http.Request) (ok bool, wait time.Duration) {
	key := clientKey(s.ClientAddr(r))
	if wait := s.guard.wait(key); wait > 0 {
		return false, wait
	}
	ok, wrong := s.adminAuth(r)
	switch {
	case ok:
		s.guard.succeeded(key)
	case wrong:
		s.guard.failed(key)
	}
	return ok, 0
}

// CheckToken compares a token typed into the login form with the admin
// token, under the same throttle as CheckAdmin. An empty admin token never
// matches.
func (s *Server) CheckToken(r *http.Request, typed string) (ok bool, wait time.Duration) {
	key := clientKey(s.ClientAddr(r))
	if wait := s.guard.wait(key); wait > 0 {
		return false, wait
	}
	token := s.AdminToken()
	if token == "" {
		return false, 0
	}
	if !SameSecret(typed, token.Value()) {
		s.guard.failed(key)
		return false, 0
	}
	s.guard.succeeded(key)
	return true, 0
}

// SameSecret compares in constant time, also for inputs of different length
// (subtle.ConstantTimeCompare returns early on a length mismatch, which would
// tell an attacker the token's length).
func SameSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// RetryAfter formats a throttle wait as whole seconds, rounded up.
func RetryAfter(wait time.Duration) string {
	return strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
}

// AdminToken returns the current admin token (it may change on reload).
func (s *Server) AdminToken() secret.Secret { return s.settings.Load().AdminToken }

func (s *Server) requireAdmin(c *gin.Context) {
	ok, wait := s.CheckAdmin(c.Request)
	switch {
	case wait > 0:
		c.Header("Retry-After", RetryAfter(wait))
		c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": "too many wrong admin tokens; retry later"})
	case !ok:
		c.Header("WWW-Authenticate", `Bearer realm="rcrouter"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "admin token required"})
	default:
		c.Next()
	}
}

// fromTrustedProxy reports whether r's peer is one of server.trusted_proxies,
// whose X-Forwarded-* headers are believed.
func (s *Server) fromTrustedProxy(r *http.Request) (netip.Addr, bool) {
	peer := peerAddr(r)
	for _, p := range s.settings.Load().TrustedProxies {
		if p.Contains(peer) {
			return peer, true
		}
	}
	return peer, false
}

func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		a, _ := netip.ParseAddr(r.RemoteAddr)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// ClientAddr is the client's address: the connection's peer, or behind a
// trusted proxy the last address that proxy put in X-Forwarded-For (the
// earlier ones are the client's to choose).
func (s *Server) ClientAddr(r *http.Request) netip.Addr {
	peer, trusted := s.fromTrustedProxy(r)
	if !trusted {
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return peer
	}
	hops := strings.Split(values[len(values)-1], ",")
	if a, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1])); err == nil {
		return a.Unmap()
	}
	return peer
}

// SecureRequest reports whether the browser reached us over TLS: directly,
// or through a trusted proxy that says X-Forwarded-Proto: https. The UI
// marks its cookies Secure then.
func (s *Server) SecureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	_, trusted := s.fromTrustedProxy(r)
	return trusted && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}
