package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Client posts JSON batches through the shared capturing transport: each
// request becomes one Exchange, with secrets redacted.
type Client struct {
	own       *http.Transport // created here when Options.Base is nil
	http      *http.Client
	userAgent string
	secrets   []secret.Secret
	maxBody   int
	timeout   time.Duration
	now       func() time.Time
}

// NewClient returns a client whose requests all pass the capture transport,
// with opts' defaults applied; secrets are redacted in every recorded URL,
// header and body. Redirects are not followed: a vendor API does not
// redirect a POST, and net/http would carry our credentials to whatever
// host it names.
func NewClient(opts destinations.Options, secrets ...secret.Secret) *Client {
	o := opts.WithDefaults()
	var own *http.Transport
	if o.Base == nil {
		// One request in flight at a time per destination (group commit),
		// so the default pool is enough; it is ours, so Close closes it.
		own = http.DefaultTransport.(*http.Transport).Clone()
		o.Base = own
	}
	return &Client{
		own: own,
		http: &http.Client{
			Transport:     &destinations.Transport{Base: o.Base, Secrets: secrets, MaxBody: o.MaxBody},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		userAgent: "rcrouter/" + o.Version,
		secrets:   secrets,
		maxBody:   o.MaxBody,
		timeout:   o.Timeout,
		now:       o.Now,
	}
}

// Close releases the idle connections of the client's own transport.
func (c *Client) Close() error {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	return nil
}

// Response is the answer to one Post.
type Response struct {
	Status   int // 0 when no answer came
	Header   http.Header
	Body     []byte // at most the Transport's read limit (DefaultMaxResponse)
	Err      error  // transport failure; set when Status is 0
	Exchange destinations.Exchange
	At       time.Time // when the answer came, for Retry-After dates
}

// Post sends body as JSON to rawURL, bounded by the timeout of Options.
func (c *Client) Post(ctx context.Context, rawURL string, body []byte, header http.Header) Response {
	// Each request gets the whole timeout, however many the batch needs.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rec := &destinations.Recorder{}
	req, err := http.NewRequestWithContext(destinations.WithRecorder(ctx, rec), http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Response{Err: errors.New(c.Redact(destinations.UnwrapURLError(err).Error()))}
	}
	maps.Copy(req.Header, header)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.http.Do(req)
	var r Response
	if err != nil {
		r.Err = errors.New(c.Redact(destinations.UnwrapURLError(err).Error()))
		if destinations.IsTimeout(err) {
			r.Err = fmt.Errorf("no response within %s: %w", c.timeout, context.DeadlineExceeded)
		}
	} else {
		r.Status, r.Header = resp.StatusCode, resp.Header
		// The capturing Transport has read the body already, up to its
		// limit, and closed the connection on any rest: reading it here
		// cannot grow past that, and what a longer answer began with is
		// enough to classify it.
		r.Body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	r.At = c.now()
	if xs := rec.Exchanges(); len(xs) > 0 {
		r.Exchange = xs[len(xs)-1]
	}
	return r
}

// Own is the exchange as one delivery's dispatch record shows it: the shared
// request with body replaced by the part of it that was this delivery's, so
// that the record shows what was sent for its event rather than a truncated
// batch of others.
func (c *Client) Own(x destinations.Exchange, body []byte) destinations.Exchange {
	x.Request.Headers = maps.Clone(x.Request.Headers)
	x.Request.Body = destinations.Truncate(c.Redact(string(body)), c.maxBody)
	return x
}

// Classify is the result of a response by HTTP status alone (DESIGN §7),
// with Retry-After honoured and msg as the explanation. A transport failure
// is a retry, timeout or network.
func (c *Client) Classify(r Response, msg string) destinations.Result {
	if r.Status == 0 {
		reason := destinations.ReasonNetwork
		if errors.Is(r.Err, context.DeadlineExceeded) {
			reason = destinations.ReasonTimeout
		}
		text := "no response"
		if r.Err != nil {
			text = r.Err.Error()
		}
		return destinations.Result{Outcome: destinations.Retry, Reason: reason, Message: text}
	}
	out, reason := destinations.Classify(r.Status)
	res := destinations.Result{Outcome: out, Reason: reason, Message: msg}
	if out == destinations.Retry {
		res.RetryAfter, _ = destinations.ParseRetryAfter(r.Header.Get("Retry-After"), r.At)
	}
	return res
}

// Detail is a short, redacted excerpt of an answer body for a message.
func (c *Client) Detail(body []byte) string {
	return destinations.Truncate(strings.TrimSpace(c.Redact(string(body))), 300)
}

// StatusMessage is "<vendor> answered HTTP 503 Service Unavailable[: detail]".
func StatusMessage(vendor string, status int, detail string) string {
	msg := strings.TrimSpace(fmt.Sprintf("%s answered HTTP %d %s", vendor, status, http.StatusText(status)))
	if detail != "" {
		msg += ": " + detail
	}
	return msg
}

// Redact replaces the client's secrets in s (vendors echo keys in errors).
func (c *Client) Redact(s string) string { return secret.Redact(s, c.secrets...) }
