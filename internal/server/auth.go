package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// SessionCookie holds the UI session. Its value is derived from the admin
// token, so rotating the token logs every browser out and the server keeps no
// session state.
const SessionCookie = "rcrouter_session"

// CSRFHeader must accompany every state-changing request authenticated by
// the session cookie (the UI's fetch calls and forms send it).
const CSRFHeader = "X-CSRF-Token"

// derive returns hex(HMAC-SHA256(token, purpose)).
func derive(token secret.Secret, purpose string) string {
	mac := hmac.New(sha256.New, []byte(token.Value()))
	mac.Write([]byte(purpose))
	return hex.EncodeToString(mac.Sum(nil))
}

// SessionValue is the cookie value for a browser that presented token.
func SessionValue(token secret.Secret) string { return derive(token, "rcrouter session v1") }

// CSRFToken is the anti-CSRF token the UI embeds in its pages.
func CSRFToken(token secret.Secret) string { return derive(token, "rcrouter csrf v1") }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// AdminAuth reports whether r carries the admin token, either as
// "Authorization: Bearer <token>" or as the UI session cookie; for the cookie,
// unsafe methods also need the CSRF header.
func AdminAuth(r *http.Request, token secret.Secret) bool {
	if token == "" {
		return false
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return equal(strings.TrimPrefix(h, "Bearer "), token.Value())
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || !equal(c.Value, SessionValue(token)) {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return equal(r.Header.Get(CSRFHeader), CSRFToken(token))
}

// AdminToken returns the current admin token (it may change on reload).
func (s *Server) AdminToken() secret.Secret { return s.settings.Load().AdminToken }

func (s *Server) requireAdmin(c *gin.Context) {
	if !AdminAuth(c.Request, s.AdminToken()) {
		c.Header("WWW-Authenticate", `Bearer realm="rcrouter"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "admin token required"})
		return
	}
	c.Next()
}
