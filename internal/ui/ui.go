// Package ui is rcrouter's embedded web interface: a destinations overview, a
// live dispatch feed per destination, and an event page, in the spirit of the
// debug feed and Event Details page of RevenueCat's dashboard.
//
// Pages are rendered with html/template from files embedded with embed.FS;
// the one script file builds live rows with textContent only, because every
// event field is attacker-controlled. Every state change goes through the
// admin API under /api/v1 with the session cookie and the CSRF header.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/rcrouter/rcrouter/internal/server"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// csp allows nothing but this origin: no inline script or style, no frames,
// no plugins. Data reaches the script through data-* attributes.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ui serves the pages. Its fields are set once by Handler and only read after.
type ui struct {
	srv    *server.Server
	log    *slog.Logger
	pages  map[string]*template.Template
	assets map[string]asset
	mux    *http.ServeMux
}

// asset is one embedded static file with its validator.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler returns the UI for s. It expects request paths with their /ui
// prefix (Server.MountUI passes them unchanged).
func Handler(s *server.Server) http.Handler {
	u := &ui{srv: s, log: s.Logger().With("component", "ui"), assets: loadAssets()}
	u.pages = parsePages(u.assetURL)
	m := http.NewServeMux()
	m.HandleFunc("GET /ui/static/{file...}", u.static)
	m.HandleFunc("GET /ui/login", u.loginPage)
	m.HandleFunc("POST /ui/login", u.login)
	m.HandleFunc("POST /ui/logout", u.logout)
	m.Handle("GET /ui/{$}", u.authed(u.overview))
	m.Handle("GET /ui/search", u.authed(u.search))
	m.Handle("GET /ui/destinations/{name}", u.authed(u.destination))
	m.Handle("GET /ui/events/{id}", u.authed(u.event))
	m.Handle("/", u.authed(func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, http.StatusNotFound, "There is no such page.")
	}))
	u.mux = m
	return u
}

// ServeHTTP sets the headers every UI answer carries, then routes.
func (u *ui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// parsePages builds one template set per page: the shared layout plus the
// page's own blocks. The templates are embedded, so a parse error is a bug
// caught by every test; panicking at start-up is the honest answer.
func parsePages(assetURL func(string) string) map[string]*template.Template {
	funcs := template.FuncMap{
		"asset":    assetURL,
		"pathesc":  pathEscape,
		"time":     formatTime,
		"timeptr":  formatTimePtr,
		"iso":      isoTime,
		"pretty":   prettyJSON,
		"duration": formatDuration,
		"dstate":   deliveryStateClass,
		"sclass":   statusClass,
		"stclass":  stateClass,
		"stlabel":  stateLabel,
		"shortsha": shortSHA,
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "overview", "destination", "event", "error"} {
		t := template.New(name).Funcs(funcs)
		template.Must(t.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
		pages[name] = t
	}
	return pages
}

// loadAssets reads the static files once and gives each a content hash, used
// both as ETag and as a cache-busting query in asset URLs.
func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("ui: reading embedded assets: " + err.Error())
	}
	return out
}

func (u *ui) assetURL(name string) string {
	a, ok := u.assets[name]
	if !ok {
		panic("ui: template names a missing asset " + name)
	}
	return "/ui/static/" + name + "?v=" + strings.Trim(a.etag, `"`)
}

// static serves embedded assets. They hold no data, so they need no session
// (the login page uses them too).
func (u *ui) static(w http.ResponseWriter, r *http.Request) {
	a, ok := u.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// URLs carry the content hash, so a long cache is safe; the ETag covers
	// requests without it.
	h.Set("Cache-Control", "public, max-age=86400")
	if match := r.Header.Get("If-None-Match"); match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(a.body)
}
