package ui

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/server"
)

// maxFormBytes bounds the login and logout forms.
const maxFormBytes = 16 << 10

// csrfField is the hidden form field that carries the CSRF token in plain
// HTML forms (fetch calls use the server.CSRFHeader header instead).
const csrfField = "csrf_token"

// authed lets a GET through with a valid session (or bearer token) and sends
// everyone else to the login page, remembering where they were going.
func (u *ui) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := u.srv.CheckAdmin(r)
		if wait > 0 {
			u.throttled(w, r, wait)
			return
		}
		if !ok {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store") // pages embed the CSRF token
		h(w, r)
	})
}

// safeNext accepts only a path inside the UI as a redirect target, so the
// login form cannot be used to send someone to another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "/ui//") {
		return "/ui/"
	}
	return next
}

type loginData struct {
	base
	Next     string
	Error    string
	Disabled bool
}

// throttled answers a client that guessed the admin token too often.
func (u *ui) throttled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	w.Header().Set("Retry-After", server.RetryAfter(wait))
	w.Header().Set("Cache-Control", "no-store")
	u.fail(w, r, http.StatusTooManyRequests, "Too many wrong admin tokens. Try again in "+server.RetryAfter(wait)+" seconds.")
}

func (u *ui) loginPage(w http.ResponseWriter, r *http.Request) {
	if u.srv.AdminAuth(r) {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	u.render(w, r, http.StatusOK, "login", loginData{
		base:     base{Title: "Sign in"},
		Next:     safeNext(r.URL.Query().Get("next")),
		Disabled: u.srv.AdminToken() == "",
	})
}

// login checks the submitted admin token under the server's failure
// throttle and, when it matches, starts a session (server.NewSession).
func (u *ui) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, http.StatusBadRequest, "invalid form")
		return
	}
	token := u.srv.AdminToken()
	next := safeNext(r.PostForm.Get("next"))
	// An empty admin token never opens the UI, whatever is typed. Failures
	// are logged in summary by the throttle, not one line each.
	ok, wait := u.srv.CheckToken(r, r.PostForm.Get("token"))
	if wait > 0 {
		u.throttled(w, r, wait)
		return
	}
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		u.render(w, r, http.StatusUnauthorized, "login", loginData{
			base:     base{Title: "Sign in"},
			Next:     next,
			Error:    "That token is not the admin token.",
			Disabled: token == "",
		})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     server.SessionCookie,
		Value:    u.srv.NewSession(),
		Path:     "/", // the API under /api/v1 reads it too
		MaxAge:   int(server.SessionMaxAge / time.Second),
		HttpOnly: true,
		Secure:   u.srv.SecureRequest(r),
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout revokes the session on the server and clears the cookie. It is a
// POST with the CSRF token, so another site cannot log the operator out.
func (u *ui) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, http.StatusBadRequest, "invalid form")
		return
	}
	if !u.validCSRF(r) {
		u.fail(w, r, http.StatusForbidden, "missing or invalid CSRF token; reload the page and try again")
		return
	}
	u.srv.EndSession(r)
	http.SetCookie(w, &http.Cookie{
		Name:     server.SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   u.srv.SecureRequest(r),
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// validCSRF checks the token from the header or the hidden form field.
func (u *ui) validCSRF(r *http.Request) bool {
	token := u.srv.AdminToken()
	if token == "" {
		return false
	}
	got := r.Header.Get(server.CSRFHeader)
	if got == "" {
		got = r.PostForm.Get(csrfField)
	}
	return got != "" && server.SameSecret(got, server.CSRFToken(token))
}

// csrf is the token to embed in pages for a signed-in operator.
func (u *ui) csrf(r *http.Request) string {
	token := u.srv.AdminToken()
	if token == "" || !u.srv.AdminAuth(r) {
		return ""
	}
	return server.CSRFToken(token)
}
