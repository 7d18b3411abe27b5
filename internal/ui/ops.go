package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
)

// timelineSize is how many events a timeline page shows.
const timelineSize = 50

// resolveSearch turns the search box into a page: an event id, or a store
// transaction id, shows the customer's timeline with that (newest) event
// marked (the event page when the event names nobody); anything else is
// taken as a customer id (app user id, original app user id or alias).
func (u *ui) resolveSearch(r *http.Request, q string) (string, error) {
	ev, err := u.srv.Store().Event(r.Context(), q)
	if errors.Is(err, store.ErrNotFound) {
		var evs []store.Event
		evs, _, err = u.srv.Store().Events(r.Context(), store.EventFilter{TransactionID: q, Limit: 1})
		if err == nil && len(evs) == 0 {
			return "/ui/customers?" + url.Values{"user_id": {q}}.Encode(), nil
		}
		if err == nil {
			ev = evs[0]
		}
	}
	if err != nil {
		return "", err
	}
	if e, derr := revenuecat.Decode(ev.Body); derr == nil && e.UserID != "" {
		return "/ui/customers?" + url.Values{"user_id": {e.UserID}, "event": {ev.ID}}.Encode(), nil
	}
	return "/ui/events/" + url.PathEscape(ev.ID), nil
}

type timelineData struct {
	base
	UserID    string
	Highlight string
	Items     []server.TimelineItem
	OlderURL  string
	NewestURL string
}

func (u *ui) timeline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user := strings.TrimSpace(q.Get("user_id"))
	if user == "" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	f := store.EventFilter{UserID: user, Before: q.Get("before"), Limit: timelineSize}
	items, next, err := u.srv.Timeline(r.Context(), f)
	if errors.Is(err, store.ErrBadCursor) {
		u.fail(w, r, http.StatusBadRequest, "That page link is no longer valid; start from the newest events.")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	page := func(before string) string {
		v := url.Values{"user_id": {user}}
		if before != "" {
			v.Set("before", before)
		}
		return "/ui/customers?" + v.Encode()
	}
	d := timelineData{base: u.base(r, "timeline", "Customer "+user), UserID: user, Highlight: q.Get("event"), Items: items}
	if next != "" {
		d.OlderURL = page(next)
	}
	if f.Before != "" {
		d.NewestURL = page("")
	}
	u.render(w, r, http.StatusOK, "timeline", d)
}

type routesData struct {
	base
	Routes []server.RouteStatus
}

func (u *ui) routes(w http.ResponseWriter, r *http.Request) {
	rs, err := u.srv.Backend().Routes(r.Context())
	if err != nil {
		u.internal(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "routes", routesData{base: u.base(r, "routes", "Routes"), Routes: rs})
}

// dayChart is a destination's last 24 h in hourly buckets; a store error
// leaves the page without its chart rather than failing it.
func (u *ui) dayChart(r *http.Request, name string) ([]store.Bucket, time.Duration, bool) {
	f, err := server.BucketFilterOf(name, "24h", u.srv.Now())
	if err != nil {
		u.log.Error("ui chart window", "err", err)
		return nil, 0, false
	}
	bs, err := u.srv.Store().DispatchBuckets(r.Context(), f)
	if err != nil {
		u.log.Warn("ui chart", "destination", name, "err", err)
		return nil, 0, false
	}
	return bs, f.Width, true
}
