package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/store"
)

// heartbeat keeps idle SSE connections (and proxies) alive.
const heartbeat = 15 * time.Second

// StreamWriteTimeout is how long one SSE message may take to leave; a
// client that does not read for that long is dropped.
const StreamWriteTimeout = 10 * time.Second

func (s *Server) adminRoutes(g *gin.RouterGroup) {
	g.GET("/destinations", s.listDestinations)
	g.GET("/dispatches", s.listDispatches)
	g.GET("/dispatches/:id", s.getDispatch)
	g.GET("/events/:id", s.getEvent)
	g.POST("/deliveries/:id/retry", s.retryDelivery)
	g.POST("/destinations/:name/replay", s.replay)
	g.POST("/destinations/:name/test", s.sendTest)
	g.POST("/destinations/:name/pause", s.pause)
	g.POST("/destinations/:name/resume", s.resume)
	g.POST("/reload", s.reload)
	g.GET("/stream", s.stream)
	g.GET("/replicas", s.listReplicas)
}

func (s *Server) listReplicas(c *gin.Context) {
	if s.opts.Replicas == nil {
		c.JSON(http.StatusNotFound, gin.H{"error": "replicas are not known to this server"})
		return
	}
	rs, err := s.opts.Replicas.Replicas(c.Request.Context())
	if err != nil {
		apiError(c, err)
		return
	}
	if rs == nil {
		rs = []store.Replica{}
	}
	c.JSON(http.StatusOK, rs)
}

// apiError answers a store or backend error with the matching status.
func apiError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
	case errors.Is(err, store.ErrConflict):
		c.JSON(http.StatusConflict, gin.H{"error": err.Error()})
	case errors.Is(err, store.ErrBadCursor):
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
	default:
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
	}
}

func (s *Server) listDestinations(c *gin.Context) {
	ds, err := s.opts.Backend.Destinations(c.Request.Context())
	if err != nil {
		apiError(c, err)
		return
	}
	if ds == nil {
		ds = []DestinationStatus{}
	}
	c.JSON(http.StatusOK, ds)
}

func (s *Server) listDispatches(c *gin.Context) {
	f := store.DispatchFilter{
		Destination: c.Query("destination"),
		Status:      c.Query("status"),
		EventID:     c.Query("event_id"),
		EventType:   c.Query("event_type"),
		Before:      c.Query("before"),
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			c.JSON(http.StatusBadRequest, gin.H{"error": "limit must be a number from 1 to 500"})
			return
		}
		f.Limit = n
	}
	items, next, err := s.opts.Store.Dispatches(c.Request.Context(), f)
	if err != nil {
		apiError(c, err)
		return
	}
	if items == nil {
		items = []store.Dispatch{}
	}
	resp := gin.H{"items": items}
	if next != "" {
		resp["next"] = next
	}
	c.JSON(http.StatusOK, resp)
}

func (s *Server) getDispatch(c *gin.Context) {
	d, err := s.opts.Store.Dispatch(c.Request.Context(), c.Param("id"))
	if err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// EventDetail is the answer of GET /api/v1/events/{id}.
type EventDetail struct {
	Event      json.RawMessage  `json:"event"`
	Normalized any              `json:"normalized"`
	Routes     json.RawMessage  `json:"routes"`
	Deliveries []store.Delivery `json:"deliveries"`
	ReceivedAt time.Time        `json:"received_at"`
}

// LoadEvent gathers an event's detail (the UI uses it too).
func (s *Server) LoadEvent(c *gin.Context, id string) (EventDetail, error) {
	ctx := c.Request.Context()
	ev, err := s.opts.Store.Event(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	ds, err := s.opts.Store.EventDeliveries(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	if ds == nil {
		ds = []store.Delivery{}
	}
	d := EventDetail{Event: ev.Body, Routes: ev.Routes, Deliveries: ds, ReceivedAt: ev.ReceivedAt}
	if !json.Valid(d.Event) {
		d.Event = nil
	}
	if len(d.Routes) == 0 {
		d.Routes = json.RawMessage("[]")
	}
	if e, err := revenuecat.Decode(ev.Body); err == nil {
		d.Normalized = e
	}
	return d, nil
}

func (s *Server) getEvent(c *gin.Context) {
	d, err := s.LoadEvent(c, c.Param("id"))
	if err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (s *Server) retryDelivery(c *gin.Context) {
	id := c.Param("id")
	if err := s.opts.Backend.Retry(c.Request.Context(), id); err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "scheduled", "delivery_id": id})
}

// replayRequest is the body of POST /api/v1/destinations/{name}/replay.
type replayRequest struct {
	Status    string    `json:"status"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	EventType string    `json:"event_type"`
	// DryRun only counts what would be scheduled (the UI shows the count
	// before the operator confirms).
	DryRun bool `json:"dry_run"`
}

func (s *Server) replay(c *gin.Context) {
	var req replayRequest
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		c.JSON(http.StatusBadRequest, gin.H{"error": "invalid replay request: " + err.Error()})
		return
	}
	status := store.State(req.Status)
	switch status {
	case "":
		status = store.Dead
	case store.Dead, store.Delivered, store.Skipped, store.Retrying:
	default:
		c.JSON(http.StatusBadRequest, gin.H{"error": `status must be one of "dead", "delivered", "skipped", "retrying"`})
		return
	}
	f := store.ReplayFilter{Destination: c.Param("name"), Status: status, Since: req.Since, Until: req.Until, EventType: req.EventType}
	n, err := s.opts.Backend.Replay(c.Request.Context(), f.Destination, f, req.DryRun)
	if err != nil {
		apiError(c, err)
		return
	}
	if req.DryRun {
		c.JSON(http.StatusOK, gin.H{"scheduled": 0, "matching": n, "dry_run": true})
		return
	}
	c.JSON(http.StatusOK, gin.H{"scheduled": n})
}

func (s *Server) sendTest(c *gin.Context) {
	id, err := s.opts.Backend.SendTest(c.Request.Context(), c.Param("name"))
	if err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "accepted", "event_id": id, "destinations": []string{c.Param("name")}})
}

func (s *Server) pause(c *gin.Context) {
	if err := s.opts.Backend.Pause(c.Request.Context(), c.Param("name")); err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": c.Param("name"), "state": "paused"})
}

func (s *Server) resume(c *gin.Context) {
	if err := s.opts.Backend.Resume(c.Request.Context(), c.Param("name")); err != nil {
		apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": c.Param("name"), "state": "resumed"})
}

// reload answers a refused config with 422: the request was well formed, the
// file it asks to apply is not. The backend's error is the refusal itself,
// not an HTTP error, so SIGHUP and file-watch reloads share it.
func (s *Server) reload(c *gin.Context) {
	if err := s.opts.Backend.Reload(c.Request.Context()); err != nil {
		c.JSON(http.StatusUnprocessableEntity, gin.H{"status": "refused", "error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "reloaded"})
}

// stream is GET /api/v1/stream: one SSE "dispatch" event per attempt. Query
// parameters destination and event_id narrow it.
func (s *Server) stream(c *gin.Context) {
	ch, cancel := s.opts.Hub.Subscribe()
	defer cancel()
	dest, eventID := c.Query("destination"), c.Query("event_id")
	w := c.Writer
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	// send writes one message under a deadline: a client that stops reading
	// fills its socket buffers, the write blocks, and it is dropped instead
	// of holding the buffers (and shutdown) forever.
	send := func(parts ...[]byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(s.opts.StreamWriteTimeout)); err != nil {
			return false
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !send([]byte(": connected\n\n")) {
		return
	}
	tick := s.opts.Clock.NewTimer(heartbeat)
	defer tick.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			if !send([]byte(": ping\n\n")) {
				return
			}
			tick.Reset(heartbeat)
		case d, ok := <-ch:
			if !ok {
				return
			}
			if (dest != "" && d.Destination != dest) || (eventID != "" && d.EventID != eventID) {
				continue
			}
			b, err := json.Marshal(d)
			if err != nil {
				continue
			}
			if !send([]byte("event: dispatch\nid: "+d.ID+"\ndata: "), b, []byte("\n\n")) {
				return
			}
		}
	}
}
