package destinations

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// DefaultMaxBody is how much of a request or response body a dispatch record
// keeps when nothing else is configured.
const DefaultMaxBody = 4096

// TruncatedMarker ends a body that was cut to fit the dispatch log.
const TruncatedMarker = "…[truncated]"

// Recorder collects the exchanges made under one context. Adapters put one in
// the context of each Send (WithRecorder) and return its Exchanges.
type Recorder struct {
	mu        sync.Mutex
	exchanges []Exchange
}

// Add appends one exchange.
func (r *Recorder) Add(x Exchange) {
	r.mu.Lock()
	r.exchanges = append(r.exchanges, x)
	r.mu.Unlock()
}

// Exchanges returns a copy of what was recorded so far.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.exchanges...)
}

type recorderKey struct{}

// WithRecorder returns a context whose HTTP requests, made through a
// Transport, are recorded in r.
func WithRecorder(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// RecorderFrom returns the recorder of ctx, or nil.
func RecorderFrom(ctx context.Context) *Recorder {
	r, _ := ctx.Value(recorderKey{}).(*Recorder)
	return r
}

// Transport is the shared capturing HTTP transport: every real request made
// through it (including those a client library repeats internally) becomes an
// Exchange with the redacted request and the truncated response. Requests are
// recorded in the Recorder of their context, or passed to OnExchange.
type Transport struct {
	Base http.RoundTripper // default http.DefaultTransport
	// Secrets are replaced by <secret> wherever they appear in the URL,
	// header values and bodies.
	Secrets []secret.Secret
	// SecretHeaders are header names whose values always print as <secret>;
	// Authorization and Proxy-Authorization are always included.
	SecretHeaders []string
	// SecretURL shows the URL as scheme://host/<secret> (Slack webhook URLs).
	SecretURL bool
	// MaxBody bounds the bodies kept (default DefaultMaxBody).
	MaxBody int
	// OnExchange, if set, is called for every exchange whose request context
	// has no Recorder (Segment's batches are sent from the library's goroutines).
	OnExchange func(req *http.Request, reqBody []byte, x Exchange)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	var reqBody []byte
	switch {
	case req.GetBody != nil:
		if rc, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(rc)
			rc.Close()
		}
	case req.Body != nil && req.Body != http.NoBody:
		// A body that cannot be re-read (no GetBody) is read here and handed
		// on from memory, so the dispatch log still shows what was sent.
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		r := *req
		r.Body = io.NopCloser(bytes.NewReader(b))
		req = &r
	}
	start := time.Now()
	resp, err := base.RoundTrip(req)
	x := Exchange{Started: start, Request: t.redactRequest(req, reqBody)}
	if err != nil {
		x.Duration = time.Since(start)
		x.Response.Error = t.redact(err.Error())
	} else {
		x.Response.StatusCode = resp.StatusCode
		head, rest, readErr := t.peek(resp.Body)
		resp.Body = rest
		x.Duration = time.Since(start)
		x.Response.Body = t.truncate(t.redact(string(head)))
		if readErr != nil {
			x.Response.Error = t.redact("reading response body: " + readErr.Error())
		}
	}
	if r := RecorderFrom(req.Context()); r != nil {
		r.Add(x)
	} else if t.OnExchange != nil {
		t.OnExchange(req, reqBody, x)
	}
	return resp, err
}

// peek reads the start of body and returns it together with a body that
// still yields every byte (and any read error) to the caller. It reads the
// longest secret's length beyond MaxBody so that a secret straddling the cut
// is redacted whole before truncation, never shown in part.
func (t *Transport) peek(body io.ReadCloser) ([]byte, io.ReadCloser, error) {
	if body == nil {
		return nil, http.NoBody, nil
	}
	limit := int64(t.maxBody()) + 1
	for _, s := range t.Secrets {
		if n := int64(t.maxBody() + len(s)); n > limit {
			limit = n
		}
	}
	head, err := io.ReadAll(io.LimitReader(body, limit))
	if err != nil {
		return head, readCloser{io.MultiReader(bytes.NewReader(head), errReader{err}), body}, err
	}
	return head, readCloser{io.MultiReader(bytes.NewReader(head), body), body}, nil
}

// errReader replays a read error that happened while peeking.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type readCloser struct {
	io.Reader
	io.Closer
}

func (t *Transport) maxBody() int {
	if t.MaxBody > 0 {
		return t.MaxBody
	}
	return DefaultMaxBody
}

func (t *Transport) redact(s string) string { return secret.Redact(s, t.Secrets...) }

func (t *Transport) truncate(s string) string { return Truncate(s, t.maxBody()) }

// Truncate keeps at most max bytes of s, cut on a rune boundary, followed by
// TruncatedMarker when anything was cut.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + TruncatedMarker
}

func (t *Transport) redactRequest(req *http.Request, body []byte) Request {
	r := Request{Method: req.Method, URL: t.redactURL(req.URL), Headers: map[string]string{}, Body: t.truncate(t.redact(string(body)))}
	for name, values := range req.Header {
		if len(values) == 0 {
			continue
		}
		v := strings.Join(values, ", ")
		if t.isSecretHeader(name) {
			v = secret.Redacted
		}
		r.Headers[name] = t.redact(v)
	}
	return r
}

func (t *Transport) redactURL(u *url.URL) string {
	if t.SecretURL {
		return RedactURL(u)
	}
	return t.redact(HideUserinfo(u))
}

// RedactURL shows a URL that is itself a secret as scheme://host/<secret>.
func RedactURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + "/" + secret.Redacted
}

func (t *Transport) isSecretHeader(name string) bool {
	name = http.CanonicalHeaderKey(name)
	if name == "Authorization" || name == "Proxy-Authorization" {
		return true
	}
	for _, h := range t.SecretHeaders {
		if http.CanonicalHeaderKey(h) == name {
			return true
		}
	}
	return false
}
