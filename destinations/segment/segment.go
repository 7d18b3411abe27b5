// Package segment delivers events to Segment through analytics-go, the way
// RevenueCat's own Segment integration does: a track with RevenueCat's event
// name and properties, and an identify, per event.
//
// analytics-go is asynchronous (a queue, batches, ten internal tries per
// batch); Send turns it into one synchronous attempt. Each message gets a
// messageId derived from the delivery key, Send waits for the library's
// Callback for each of its messages, and the capturing Transport hands every
// HTTP batch attempt to every delivery whose messages it carried.
package segment

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	segmentio "github.com/segmentio/analytics-go/v3"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// libraryAttempts is how many times analytics-go v3.3.0 sends one batch
// before it gives up (a constant in the library, not configurable).
const libraryAttempts = 10

// libraryTimeout is the http.Client timeout analytics-go sets; a longer
// Options.Timeout cannot lengthen a request beyond it.
const libraryTimeout = 10 * time.Second

// Defaults of Options.
const (
	DefaultFlushInterval = 200 * time.Millisecond
	closeTimeout         = 15 * time.Second
)

// Options are the shared adapter options plus Segment's own knobs.
type Options struct {
	// Timeout is capped at 10s by analytics-go. Base nil means a transport of
	// this destination's own (a clone of http.DefaultTransport keeping up to
	// 16 idle connections to Segment), closed by Close.
	destinations.Options
	// FlushInterval is how long a message may wait for its batch to fill
	// before the batch is sent anyway; default 200ms.
	FlushInterval time.Duration
	// RetryAfter spaces the library's ten tries of one batch (it is given the
	// number of the failed try, from 0). The default, 50ms doubling up to
	// 500ms, keeps a whole burst to about 3.3s plus the requests themselves.
	RetryAfter func(try int) time.Duration
}

// DefaultRetryAfter is the default Options.RetryAfter: 50ms doubling, capped
// at 500ms, and no wait after the tenth try (analytics-go waits after its last
// try too, before reporting the failure).
func DefaultRetryAfter(try int) time.Duration {
	if try >= libraryAttempts-1 {
		return 0
	}
	d := 50 * time.Millisecond << min(try, 4)
	return min(d, 500*time.Millisecond)
}

// Destination is one Segment destination: one long-lived analytics-go client
// and the deliveries waiting for its callbacks.
type Destination struct {
	name    string
	cfg     Config
	log     *slog.Logger
	version string
	maxBody int
	maxWait time.Duration
	client  segmentio.Client
	ownBase *http.Transport // created here, so closed here

	mu      sync.Mutex
	closed  bool
	waiting map[string]*pending // by messageId
}

// pending is one Send waiting for the callbacks of its messages.
type pending struct {
	exchanges []destinations.Exchange
	status    map[string]int    // last HTTP status seen per messageId (0: transport error)
	lastErr   map[string]string // last transport error or response body per messageId
	results   map[string]destinations.Result
	left      int
	done      chan struct{}
}

// New builds the destination and starts its analytics-go client; Close stops it.
// Its errors do not name the destination: the caller does.
func New(name string, cfg Config, opts Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	opts.Options = opts.Options.WithDefaults()
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.RetryAfter == nil {
		opts.RetryAfter = DefaultRetryAfter
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	d := &Destination{
		name:    name,
		cfg:     cfg,
		log:     opts.Logger.With("destination", name),
		version: opts.Version,
		maxBody: opts.MaxBody,
		waiting: map[string]*pending{},
	}
	// The longest a batch can take: the flush wait, ten requests and the
	// waits between them. Send never waits longer than this.
	d.maxWait = opts.FlushInterval + time.Second
	for i := range libraryAttempts {
		d.maxWait += min(opts.Timeout, libraryTimeout) + opts.RetryAfter(i)
	}
	// The write key travels as HTTP Basic credentials ("<key>:" in base64):
	// a response that echoes the Authorization header must not show it.
	secrets := []secret.Secret{cfg.WriteKey,
		secret.Secret(base64.StdEncoding.EncodeToString([]byte(cfg.WriteKey.Value() + ":")))}
	if opts.Base == nil {
		// analytics-go sends each batch from its own goroutine, so under load
		// several requests run at once; http.DefaultTransport keeps only 2
		// idle connections per host and would open (and close) one for
		// every other batch.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		d.ownBase, opts.Base = t, t
	}
	capture := &destinations.Transport{
		Base:       timeoutTransport{base: opts.Base, timeout: opts.Timeout},
		Secrets:    secrets,
		MaxBody:    opts.MaxBody,
		OnExchange: d.onExchange,
	}
	client, err := segmentio.NewWithConfig(cfg.WriteKey.Value(), segmentio.Config{
		Endpoint:   cfg.Endpoint,
		Interval:   opts.FlushInterval,
		BatchSize:  cfg.BatchSize,
		Transport:  stopOnReject{next: capture},
		Logger:     logAdapter{log: d.log, key: cfg.WriteKey},
		Callback:   callback{d},
		RetryAfter: opts.RetryAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	d.client = client
	return d, nil
}

var (
	_ destinations.Destination = (*Destination)(nil)
	_ destinations.Capable     = (*Destination)(nil)
)

// Capabilities: analytics-go gathers concurrent messages into batches, so the
// scheduler runs at least a batch worth of Sends at once (every Send enqueues
// two messages, so a full batch needs no more); and one Send waits for the
// library's whole burst of tries, MaxWait.
func (d *Destination) Capabilities() destinations.Capabilities {
	return destinations.Capabilities{Batch: d.cfg.BatchSize, MaxWait: d.maxWait}
}

// String names the destination without its write key.
func (d *Destination) String() string { return "segment destination " + d.name }

// GoString keeps %#v from printing the fields, which hold secrets fmt cannot
// redact (it calls no methods on unexported fields).
func (d *Destination) GoString() string { return d.String() }

// LogValue logs the destination as its name and endpoint, never the write key.
func (d *Destination) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", d.name), slog.String("type", "segment"), slog.String("endpoint", d.cfg.Endpoint))
}

// Send enqueues the event's track and identify and waits until analytics-go
// has reported on both, or ctx is done.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	e := dl.Event
	name, ok := analytics.EventName(e, d.cfg.Events)
	if !ok {
		return destinations.Result{
			Outcome: destinations.Skipped,
			Reason:  destinations.ReasonSkipped,
			Message: "no Segment event name for " + e.Type,
		}
	}
	key := dl.Key
	if key == "" {
		key = "rc:" + e.ID + ":" + dl.Destination
	}
	trackID, identifyID := MessageIDs(key)
	track, identify := d.messages(e, name, trackID, identifyID)

	p := &pending{
		status:  map[string]int{},
		lastErr: map[string]string{},
		results: map[string]destinations.Result{},
		left:    2,
		done:    make(chan struct{}),
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork,
			Message: "closed"}
	}
	if d.waiting[trackID] != nil || d.waiting[identifyID] != nil {
		// The scheduler hands out a delivery once; a second Send of the same
		// key while the first waits would get the first one's callbacks.
		d.mu.Unlock()
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonClientError,
			Message: fmt.Sprintf("delivery %s is already in flight", key)}
	}
	d.waiting[trackID] = p
	d.waiting[identifyID] = p
	d.mu.Unlock()

	// Messages are registered before they are enqueued: the callback may run
	// before Enqueue returns.
	for _, m := range []struct {
		id  string
		msg segmentio.Message
	}{{trackID, track}, {identifyID, identify}} {
		if err := d.client.Enqueue(m.msg); err != nil {
			d.resolve(m.id, enqueueResult(err))
		}
	}

	ctx, cancel := context.WithTimeout(ctx, d.maxWait)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	// Forget the messages and read the results in one step: after it, late
	// callbacks and exchanges of these messages find nobody waiting.
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.waiting, trackID)
	delete(d.waiting, identifyID)
	res := combine(p.results, trackID, identifyID)
	if p.left > 0 && res.Outcome != destinations.Permanent {
		res = destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout,
			Message: "timed out waiting for the batch result"}
	}
	res.Exchanges = p.exchanges
	return res
}

// Close flushes queued messages and stops the client. Batches still retrying
// are dropped by analytics-go (their Sends get Retry); Close gives up after
// 15s, leaving the library to finish its last request on its own.
func (d *Destination) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- d.client.Close() }()
	select {
	case err := <-done:
		if d.ownBase != nil {
			d.ownBase.CloseIdleConnections()
		}
		if err != nil {
			return fmt.Errorf("segment: close: %w", err)
		}
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("segment: close: flush still running after %s", closeTimeout)
	}
}

// resolve records the result of one message.
func (d *Destination) resolve(id string, r destinations.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.waiting[id]
	if p == nil {
		d.log.Debug("segment result for a message nobody waits for", "message_id", id, "outcome", r.Outcome)
		return
	}
	if _, seen := p.results[id]; seen {
		return
	}
	p.results[id] = r
	p.left--
	if p.left == 0 {
		close(p.done)
	}
}

// outcome classifies one message from the library's verdict and the last
// HTTP status its batch got (set by onExchange before the callback runs).
func (d *Destination) outcome(id string, libErr error) destinations.Result {
	d.mu.Lock()
	status, seen, detail := 0, false, ""
	if p := d.waiting[id]; p != nil {
		status, seen = p.status[id]
		detail = p.lastErr[id]
	}
	d.mu.Unlock()
	switch {
	case errors.Is(libErr, segmentio.ErrMessageTooBig):
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "message over Segment's 32 KB limit"}
	case status >= 300 && status < 400:
		// Redirects are never followed (destinations.Transport): the
		// endpoint is wrong and repeating cannot fix it.
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonClientError,
			Message: withDetail(fmt.Sprintf("HTTP %d redirect not followed", status), detail)}
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		// Segment answers 400 for invalid JSON and 413 for a batch that is
		// too big: sending the same bytes again cannot succeed.
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonClientError,
			Message: withDetail(fmt.Sprintf("segment rejected the batch: HTTP %d", status), detail)}
	case libErr == nil:
		return destinations.Result{Outcome: destinations.Delivered}
	case errors.Is(libErr, segmentio.ErrClosed):
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork,
			Message: "closed before the batch was sent"}
	case errors.Is(libErr, segmentio.ErrTooManyRequests):
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
			Message: "too many batches in flight"}
	case !seen || status == 0:
		reason := destinations.ReasonNetwork
		if strings.Contains(detail, "deadline exceeded") || strings.Contains(detail, "timeout") {
			reason = destinations.ReasonTimeout
		}
		return destinations.Result{Outcome: destinations.Retry, Reason: reason,
			Message: withDetail(fmt.Sprintf("%d tries failed", libraryAttempts), detail)}
	default:
		// Every other failure is retried by the scheduler, whatever the code:
		// the library has already retried it and Segment documents only 400
		// and 413 as final.
		_, reason := destinations.Classify(status)
		if reason == destinations.ReasonNone {
			reason = destinations.ReasonServerError
		}
		return destinations.Result{Outcome: destinations.Retry, Reason: reason,
			Message: withDetail(fmt.Sprintf("segment answered HTTP %d to %d tries", status, libraryAttempts), detail)}
	}
}

func withDetail(msg, detail string) string {
	detail = strings.TrimSpace(detail)
	if detail == "" {
		return msg
	}
	return msg + ": " + destinations.Truncate(detail, 200)
}

// enqueueResult classifies an Enqueue error: a closed client is temporary, an
// invalid message (no user id) is not.
func enqueueResult(err error) destinations.Result {
	if errors.Is(err, segmentio.ErrClosed) {
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork,
			Message: "closed"}
	}
	return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
		Message: fmt.Sprintf("invalid message: %v", err)}
}

// combine reports the worse of the two message results: permanent over retry
// over delivered. A partly delivered event is retried whole; Segment drops
// the duplicate by messageId.
func combine(results map[string]destinations.Result, ids ...string) destinations.Result {
	best := destinations.Result{Outcome: destinations.Delivered}
	rank := map[destinations.Outcome]int{destinations.Delivered: 0, destinations.Retry: 1, destinations.Permanent: 2}
	for _, id := range ids {
		r, ok := results[id]
		if ok && rank[r.Outcome] > rank[best.Outcome] {
			best = r
		}
	}
	return best
}

// batchBody is the part of a batch request onExchange reads.
type batchBody struct {
	Batch []json.RawMessage `json:"batch"`
}

// onExchange gives one HTTP batch attempt to every delivery with a message in
// the batch. Each gets the exchange with a request body of only its own
// messages, {"batch":[…]}, exactly as they were sent, so its dispatch record
// shows what was sent for that event rather than a truncated batch of others.
func (d *Destination) onExchange(_ *http.Request, body []byte, x destinations.Exchange) {
	var b batchBody
	if err := json.Unmarshal(body, &b); err != nil {
		d.log.Warn("segment batch request not readable", "error", err)
		return
	}
	detail := x.Response.Error
	if detail == "" && x.Response.StatusCode >= 300 {
		detail = x.Response.Body
	}
	if x.Response.StatusCode == http.StatusBadRequest || x.Response.StatusCode == http.StatusRequestEntityTooLarge {
		d.log.Warn("segment rejected a batch", "status", x.Response.StatusCode, "messages", len(b.Batch))
	}
	type share struct {
		ids  []string
		msgs []json.RawMessage
	}
	shares := map[*pending]*share{}
	var order []*pending
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, raw := range b.Batch {
		var m struct {
			MessageID string `json:"messageId"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		p := d.waiting[m.MessageID]
		if p == nil {
			continue
		}
		s := shares[p]
		if s == nil {
			s = &share{}
			shares[p] = s
			order = append(order, p)
		}
		s.ids = append(s.ids, m.MessageID)
		s.msgs = append(s.msgs, raw)
	}
	for _, p := range order {
		s := shares[p]
		own, _ := json.Marshal(batchBody{Batch: s.msgs})
		px := x
		px.Request.Headers = maps.Clone(x.Request.Headers)
		px.Request.Body = destinations.Truncate(secret.Redact(string(own), d.cfg.WriteKey), d.maxBody)
		p.exchanges = append(p.exchanges, px)
		for _, id := range s.ids {
			p.status[id] = x.Response.StatusCode
			p.lastErr[id] = detail
		}
	}
}

// callback receives analytics-go's per-message verdicts.
type callback struct{ d *Destination }

func (c callback) Success(m segmentio.Message) {
	id := messageID(m)
	c.d.resolve(id, c.d.outcome(id, nil))
}

func (c callback) Failure(m segmentio.Message, err error) {
	id := messageID(m)
	c.d.resolve(id, c.d.outcome(id, err))
}

func messageID(m segmentio.Message) string {
	switch m := m.(type) {
	case segmentio.Track:
		return m.MessageId
	case segmentio.Identify:
		return m.MessageId
	}
	return ""
}

// stopOnReject ends analytics-go's ten-try burst at the first 400, 413 or
// redirect.
// The library retries every non-2xx status and only stops on success, so the
// rejected response — already recorded with its real status and body by the
// capturing Transport underneath — is handed to the library as an empty 200.
// The callback then reports Success, and outcome turns it back into
// Permanent from the recorded status.
type stopOnReject struct{ next http.RoundTripper }

func (s stopOnReject) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	redirect := resp != nil && resp.StatusCode >= 300 && resp.StatusCode < 400
	if err != nil || (!redirect && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Proto:      resp.Proto,
		ProtoMajor: resp.ProtoMajor,
		ProtoMinor: resp.ProtoMinor,
		Header:     http.Header{},
		Body:       http.NoBody,
		Request:    req,
	}, nil
}

// timeoutTransport bounds one request by Options.Timeout; analytics-go's own
// client timeout is a fixed 10s.
type timeoutTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// logAdapter sends analytics-go's log lines to slog without the response
// bodies and message contents some of them carry (they may hold subscriber
// attributes); the dispatch log has the bodies.
type logAdapter struct {
	log *slog.Logger
	key secret.Secret
}

func (l logAdapter) Logf(format string, args ...any) {
	l.log.Debug("analytics-go: " + l.safeFormat(format, args))
}

func (l logAdapter) Errorf(format string, args ...any) {
	l.log.Warn("analytics-go: " + l.safeFormat(format, args))
}

// safeFormat formats a library log line, keeping numbers and errors (with the
// write key redacted) and replacing every other argument — response status
// lines and bodies, messages — with "…".
func (l logAdapter) safeFormat(format string, args []any) string {
	safe := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case int, int64, time.Duration:
			safe[i] = a
		case error:
			safe[i] = secret.Redact(a.Error(), l.key)
		default:
			safe[i] = "…"
		}
	}
	return fmt.Sprintf(format, safe...)
}
