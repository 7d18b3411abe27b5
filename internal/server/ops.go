package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/router"
)

// TimelineItem is one event of GET /api/v1/events (DESIGN §6).
type TimelineItem struct {
	ID           string             `json:"id"`
	Type         string             `json:"type"`
	UserID       string             `json:"user_id"`
	ReceivedAt   time.Time          `json:"received_at"`
	Destinations []TimelineDelivery `json:"destinations"`
}

// TimelineDelivery is where a timeline event went and how it stands.
type TimelineDelivery struct {
	Name   string      `json:"name"`
	Status store.State `json:"status"`
}

// Timeline reads one page of events with where each went (the API and the
// UI's timeline share it). An event whose body no longer decodes keeps an
// empty user_id rather than failing the page.
func (s *Server) Timeline(ctx context.Context, f store.EventFilter) ([]TimelineItem, string, error) {
	evs, next, err := s.opts.Store.Events(ctx, f)
	if err != nil {
		return nil, "", err
	}
	items := make([]TimelineItem, 0, len(evs))
	for _, ev := range evs {
		it := TimelineItem{ID: ev.ID, Type: ev.Type, ReceivedAt: ev.ReceivedAt, Destinations: []TimelineDelivery{}}
		if e, err := revenuecat.Decode(ev.Body); err == nil {
			it.UserID = e.UserID
		}
		ds, err := s.opts.Store.EventDeliveries(ctx, ev.ID)
		if err != nil {
			return nil, "", err
		}
		for _, d := range ds {
			it.Destinations = append(it.Destinations, TimelineDelivery{Name: d.Destination, Status: d.State})
		}
		items = append(items, it)
	}
	return items, next, nil
}

// eventFilterOf reads the query of GET /api/v1/events; the error is the
// client's (400).
func eventFilterOf(c *gin.Context) (store.EventFilter, error) {
	f := store.EventFilter{UserID: c.Query("user_id"), TransactionID: c.Query("transaction_id"), Type: c.Query("type"), Before: c.Query("before")}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(b.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest(b.name + " must be an RFC 3339 time (2026-05-01T12:00:00Z)")
			}
			*b.dst = t
		}
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return f, badRequest("limit must be a number from 1 to 500")
		}
		f.Limit = n
	}
	return f, nil
}

// badRequest is a client error with its message for the answer.
type badRequest string

func (e badRequest) Error() string { return string(e) }

func (s *Server) listEvents(c *gin.Context) {
	f, err := eventFilterOf(c)
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	items, next, err := s.Timeline(c.Request.Context(), f)
	answerPage(c, items, next, err)
}

func (s *Server) listRoutes(c *gin.Context) {
	rs, err := s.opts.Backend.Routes(c.Request.Context())
	answerList(c, rs, err)
}

// RouteTestResult is the answer of POST /api/v1/routes/test: what
// `rcrouter routes` prints for one event.
type RouteTestResult struct {
	EventID      string           `json:"event_id"`
	Type         string           `json:"type"`
	Lifecycle    string           `json:"lifecycle"`
	Environment  string           `json:"environment"`
	Entitlements []string         `json:"entitlements"`
	Routes       []router.Verdict `json:"routes"`
	Destinations []router.Match   `json:"destinations"`
}

// routeTest decodes a RevenueCat body as the webhook does and routes it
// through the running routes; nothing is stored.
func (s *Server) routeTest(ctx context.Context, body []byte) (RouteTestResult, error) {
	e, err := revenuecat.Decode(body)
	if err != nil {
		return RouteTestResult{}, badRequest(err.Error())
	}
	d, err := s.opts.Backend.TestRoute(ctx, e)
	if err != nil {
		return RouteTestResult{}, err
	}
	r := RouteTestResult{EventID: e.ID, Type: e.Type, Lifecycle: string(e.Lifecycle), Environment: e.Environment,
		Entitlements: e.Entitlements, Routes: d.Verdicts, Destinations: d.Destinations}
	if r.Entitlements == nil {
		r.Entitlements = []string{}
	}
	if r.Routes == nil {
		r.Routes = []router.Verdict{}
	}
	if r.Destinations == nil {
		r.Destinations = []router.Match{}
	}
	return r, nil
}

func (s *Server) testRoute(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, s.settings.Load().MaxBodyBytes+1))
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	if int64(len(body)) > s.settings.Load().MaxBodyBytes {
		c.JSON(http.StatusRequestEntityTooLarge, gin.H{"error": "body over server.max_body_bytes"})
		return
	}
	r, err := s.routeTest(c.Request.Context(), body)
	var bad badRequest
	if errors.As(err, &bad) {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	if err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// Stats windows: per-minute buckets up to 6 h, per-hour beyond, up to the
// default retention (nothing older is kept).
const (
	minuteWindow = 6 * time.Hour
	maxWindow    = 168 * time.Hour
)

// BucketFilterOf reads ?window= (default 24h) of the stats API: buckets end
// with the current, partial one, aligned to their width.
func BucketFilterOf(destination, window string, now time.Time) (store.BucketFilter, error) {
	w := 24 * time.Hour
	if window != "" {
		var err error
		if w, err = time.ParseDuration(window); err != nil || w < time.Minute || w > maxWindow {
			return store.BucketFilter{}, badRequest("window must be a duration from 1m to 168h (24h, 6h, 90m)")
		}
	}
	width := time.Hour
	if w <= minuteWindow {
		width = time.Minute
	}
	count := int((w + width - 1) / width)
	end := now.Truncate(width).Add(width)
	return store.BucketFilter{Destination: destination, Since: end.Add(-time.Duration(count) * width), Width: width, Count: count}, nil
}

func (s *Server) destinationStats(c *gin.Context) {
	f, err := BucketFilterOf(c.Param("name"), c.Query("window"), s.opts.Clock.Now())
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	bs, err := s.opts.Store.DispatchBuckets(c.Request.Context(), f)
	if err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"buckets": bs, "width_seconds": int(f.Width / time.Second)})
}

// Now is the server's clock (the UI's stats windows read it).
func (s *Server) Now() time.Time { return s.opts.Clock.Now() }
