package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
)

// feedSize is how many dispatches a destination page renders; older ones are
// a keyset page away.
const feedSize = 50

// dispatchStatuses are the values of the status filter (a Dispatch's status).
func dispatchStatuses() []string { return []string{"delivered", "retrying", "dead", "skipped"} }

// base is what the layout needs on every page.
type base struct {
	Title string
	Page  string // names the page for app.js
	CSRF  string // empty when nobody is signed in
}

func (u *ui) base(r *http.Request, page, title string) base {
	return base{Title: title, Page: page, CSRF: u.csrf(r)}
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 and never half a page.
func (u *ui) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		u.log.Error("ui template", "page", page, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

type errorData struct {
	base
	Code    int
	Message string
}

// fail renders the error page; msg is shown to the operator, so it never
// holds more than the request already told.
func (u *ui) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	u.render(w, r, code, "error", errorData{base: u.base(r, "error", http.StatusText(code)), Code: code, Message: msg})
}

// internal logs err and answers 500 without its text (store errors may name
// paths and queries).
func (u *ui) internal(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Error("ui page failed", "path", r.URL.Path, "err", err)
	u.fail(w, r, http.StatusInternalServerError, "The page could not be loaded; the server log has the details.")
}

type overviewData struct {
	base
	Destinations []server.DestinationStatus
	Replicas     []store.Replica
	// ConfigsDiffer: live replicas run different config files (a deploy
	// half done, or a file edited on one machine only).
	ConfigsDiffer bool
	ReplicasError string
}

func (u *ui) overview(w http.ResponseWriter, r *http.Request) {
	ds, err := u.srv.Backend().Destinations(r.Context())
	if err != nil {
		u.internal(w, r, err)
		return
	}
	d := overviewData{base: u.base(r, "overview", "Destinations"), Destinations: ds}
	if l := u.srv.Replicas(); l != nil {
		// The destinations are the page; a failed replicas read only says so.
		if rs, err := l.Replicas(r.Context()); err != nil {
			u.log.Warn("list replicas", "err", err)
			d.ReplicasError = "The replicas could not be read."
		} else {
			d.Replicas, d.ConfigsDiffer = rs, configsDiffer(rs)
		}
	}
	u.render(w, r, http.StatusOK, "overview", d)
}

// configsDiffer reports whether the live replicas run more than one config
// (by config_sha256); replicas that stopped beating do not count.
func configsDiffer(rs []store.Replica) bool {
	seen := ""
	for _, r := range rs {
		if !r.Alive {
			continue
		}
		if seen != "" && r.ConfigSHA256 != seen {
			return true
		}
		seen = r.ConfigSHA256
	}
	return false
}

// search sends the event-id search box to the event page.
func (u *ui) search(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("event_id"))
	if id == "" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/events/"+url.PathEscape(id), http.StatusSeeOther)
}

type destinationData struct {
	base
	Dest     server.DestinationStatus
	Filter   store.DispatchFilter
	Statuses []string
	Rows     []feedRow
	// Live is false on older pages: new rows belong on the first page only.
	Live      bool
	Filtered  bool
	OlderURL  string
	NewestURL string
}

func (u *ui) destination(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ds, err := u.srv.Backend().Destinations(r.Context())
	if err != nil {
		u.internal(w, r, err)
		return
	}
	var dest *server.DestinationStatus
	for i := range ds {
		if ds[i].Name == name {
			dest = &ds[i]
			break
		}
	}
	if dest == nil {
		u.fail(w, r, http.StatusNotFound, "No destination named "+strconv.Quote(name)+".")
		return
	}
	q := r.URL.Query()
	f := store.DispatchFilter{
		Destination: name,
		Status:      q.Get("status"),
		EventType:   strings.TrimSpace(q.Get("event_type")),
		EventID:     strings.TrimSpace(q.Get("event_id")),
		Before:      q.Get("before"),
		Limit:       feedSize,
	}
	if f.Status != "" && !slices.Contains(dispatchStatuses(), f.Status) {
		u.fail(w, r, http.StatusBadRequest, "Unknown status filter "+strconv.Quote(f.Status)+".")
		return
	}
	rows, next, err := u.srv.Store().Dispatches(r.Context(), f)
	if errors.Is(err, store.ErrBadCursor) {
		u.fail(w, r, http.StatusBadRequest, "That page link is no longer valid; start from the newest dispatches.")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	page := func(before string) string {
		v := url.Values{}
		for k, val := range map[string]string{"status": f.Status, "event_type": f.EventType, "event_id": f.EventID, "before": before} {
			if val != "" {
				v.Set(k, val)
			}
		}
		p := "/ui/destinations/" + url.PathEscape(name)
		if len(v) > 0 {
			p += "?" + v.Encode()
		}
		return p
	}
	d := destinationData{
		base:     u.base(r, "destination", name),
		Dest:     *dest,
		Filter:   f,
		Statuses: dispatchStatuses(),
		Rows:     feedRows(rows),
		Live:     f.Before == "",
		Filtered: f.Status != "" || f.EventType != "" || f.EventID != "",
	}
	if next != "" {
		d.OlderURL = page(next)
	}
	if f.Before != "" {
		d.NewestURL = page("")
	}
	u.render(w, r, http.StatusOK, "destination", d)
}

// feedRow is one dispatch of the feed. Retry is offered on the newest failed
// attempt of a delivery only: an older failure whose delivery was retried
// since would otherwise invite sending the event again.
type feedRow struct {
	store.Dispatch
	Retry bool
}

// feedRows marks, in a newest-first page, which rows get a Retry button.
func feedRows(ds []store.Dispatch) []feedRow {
	seen := map[string]bool{}
	out := make([]feedRow, len(ds))
	for i, d := range ds {
		out[i] = feedRow{Dispatch: d, Retry: retryable(d.Status) && !seen[d.DeliveryID]}
		seen[d.DeliveryID] = true
	}
	return out
}

// verdict is one route's decision as stored at ingest.
type verdict struct {
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	Reason  string `json:"reason"`
}

// field is one row of the normalized-fields table.
type field struct{ Name, Value string }

type attribute struct {
	Key, Value, Updated string
}

type eventData struct {
	base
	ID         string
	Type       string
	ReceivedAt time.Time
	Event      *event.Event // nil when the stored body no longer decodes
	Raw        string
	Routes     []verdict
	RoutesErr  bool
	Deliveries []store.Delivery
	Fields     []field
	Attributes []attribute
}

func (u *ui) event(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	ev, err := u.srv.Store().Event(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		u.fail(w, r, http.StatusNotFound, "No event with id "+strconv.Quote(id)+" is stored (events expire after the retention period).")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	dels, err := u.srv.Store().EventDeliveries(ctx, id)
	if err != nil {
		u.internal(w, r, err)
		return
	}
	d := eventData{
		base:       u.base(r, "event", "Event "+id),
		ID:         ev.ID,
		Type:       ev.Type,
		ReceivedAt: ev.ReceivedAt,
		Raw:        prettyJSON(ev.Body),
		Deliveries: dels,
	}
	if len(ev.Routes) > 0 {
		if err := json.Unmarshal(ev.Routes, &d.Routes); err != nil {
			d.RoutesErr = true
		}
	}
	if e, err := revenuecat.Decode(ev.Body); err == nil {
		d.Event = e
		d.Fields = normalizedFields(e)
		d.Attributes = attributes(e)
	}
	u.render(w, r, http.StatusOK, "event", d)
}

// normalizedFields picks the fields an operator looks at first; the raw JSON
// below the table has everything else.
func normalizedFields(e *event.Event) []field {
	var fs []field
	add := func(name, value string) {
		if value != "" {
			fs = append(fs, field{name, value})
		}
	}
	flags := []string{}
	for _, f := range []struct {
		on   bool
		name string
	}{
		{e.IsTrialStart, "trial start"}, {e.IsTrialConversion, "trial conversion"}, {e.IsRefund, "refund"},
		{e.IsSandbox, "sandbox"}, {e.IsTest, "test"}, {e.IsFamilyShare, "family share"},
	} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	price := floatString(e.Price)
	if price != "" {
		price += " USD"
	}
	local := floatString(e.PriceInPurchasedCurrency)
	if local != "" && e.Currency != "" {
		local += " " + e.Currency
	}
	add("type", e.Type)
	add("lifecycle", string(e.Lifecycle))
	add("user_id", e.UserID)
	add("app_user_id", e.AppUserID)
	add("original_app_user_id", e.OriginalAppUserID)
	add("aliases", strings.Join(e.Aliases, ", "))
	add("product_id", e.ProductID)
	add("new_product_id", e.NewProductID)
	add("entitlements", strings.Join(e.Entitlements, ", "))
	add("period_type", e.PeriodType)
	add("store", e.Store)
	add("environment", e.Environment)
	add("price", price)
	add("price_in_purchased_currency", local)
	add("country_code", e.CountryCode)
	add("purchased_at", msTime(e.PurchasedAtMs))
	add("expiration_at", msTime(e.ExpirationAtMs))
	if e.EventTimestampMs != 0 {
		add("event_timestamp", msTime(&e.EventTimestampMs))
	}
	add("cancel_reason", e.CancelReason)
	add("expiration_reason", e.ExpirationReason)
	add("transaction_id", e.TransactionID)
	add("original_transaction_id", e.OriginalTransactionID)
	add("transferred_from", strings.Join(e.TransferredFrom, ", "))
	add("transferred_to", strings.Join(e.TransferredTo, ", "))
	add("app_id", e.AppID)
	add("flags", strings.Join(flags, ", "))
	return fs
}

func attributes(e *event.Event) []attribute {
	keys := make([]string, 0, len(e.SubscriberAttributes))
	for k := range e.SubscriberAttributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]attribute, 0, len(keys))
	for _, k := range keys {
		a := e.SubscriberAttributes[k]
		var upd string
		if a.UpdatedAtMs != 0 {
			upd = msTime(&a.UpdatedAtMs)
		}
		out = append(out, attribute{Key: k, Value: a.Value, Updated: upd})
	}
	return out
}
