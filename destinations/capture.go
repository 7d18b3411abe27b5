package destinations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// DefaultMaxResponse bounds how much of a response body anyone, an adapter or
// a vendor library, can read through a Transport. Vendors answer in a few
// KiB; a sink that answers with megabytes must not grow the process.
const DefaultMaxResponse = 256 << 10

// UnreadMarker ends a recorded body whose response was longer than the
// Transport reads: the rest was discarded with the connection.
const UnreadMarker = "…[truncated: response over the read limit, rest not read]"

// ErrResponseTooLarge is what reading a response body returns after
// MaxResponse bytes when the destination sent more.
var ErrResponseTooLarge = errors.New("response body over the read limit")

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
	// MaxResponse bounds the response bytes read (default
	// DefaultMaxResponse); the caller reads them and then ErrResponseTooLarge.
	MaxResponse int
	// OnExchange, if set, is called for every exchange whose request context
	// has no Recorder (Segment's batches are sent from the library's goroutines).
	OnExchange func(req *http.Request, reqBody []byte, x Exchange)
}

// RoundTrip implements http.RoundTripper. Two policies hold for every client
// above it: a response body is read up to MaxResponse and the connection
// closed on the rest, and a redirect is never followed (its Location is
// removed, so net/http hands the 3xx back; the record names it).
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
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			// A redirect would carry the credentials (Segment's Basic
			// auth) or the batch to whatever the Location names.
			resp.Header.Del("Location")
			x.Response.Error = "redirect not followed: Location: " + t.redactLocation(req.URL, loc)
		}
		head, cut, readErr := t.readBounded(resp.Body)
		resp.Body = t.replay(head, cut, readErr)
		x.Duration = time.Since(start)
		x.Response.Body = t.truncate(t.redact(string(head)))
		if cut {
			// The marker fits within MaxBody, so a later Truncate to the
			// same size keeps it.
			kept := Truncate(t.redact(string(head)), max(0, t.maxBody()-len(UnreadMarker)))
			x.Response.Body = strings.TrimSuffix(kept, TruncatedMarker) + UnreadMarker
		}
		if readErr != nil && x.Response.Error == "" {
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

// readBounded reads body up to MaxResponse and closes it. cut reports that
// the destination sent more: closing an unfinished body drops the connection
// instead of draining it, so the rest never reaches this process. The
// bound is at least the longest secret's length beyond MaxBody, so that a
// secret straddling the recorded cut is redacted whole, never shown in part.
func (t *Transport) readBounded(body io.ReadCloser) (head []byte, cut bool, err error) {
	if body == nil {
		return nil, false, nil
	}
	defer body.Close()
	limit := t.maxResponse()
	for _, s := range t.Secrets {
		limit = max(limit, t.maxBody()+len(s))
	}
	head, err = io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if len(head) > limit {
		return head[:limit], true, nil
	}
	return head, false, err
}

// replay gives the caller the bytes that were read, then the read error,
// ErrResponseTooLarge for a cut body, or EOF.
func (t *Transport) replay(head []byte, cut bool, err error) io.ReadCloser {
	if cut {
		err = fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, len(head))
	}
	if err != nil {
		return io.NopCloser(io.MultiReader(bytes.NewReader(head), errReader{err}))
	}
	return io.NopCloser(bytes.NewReader(head))
}

// errReader replays a read error that happened while peeking.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (t *Transport) maxBody() int {
	if t.MaxBody > 0 {
		return t.MaxBody
	}
	return DefaultMaxBody
}

func (t *Transport) maxResponse() int {
	if t.MaxResponse > 0 {
		return t.MaxResponse
	}
	return DefaultMaxResponse
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

// redactLocation shows a redirect target without credentials: its userinfo
// and the configured secrets are redacted, and when the destination's own URL
// is a secret, only scheme://host/<secret> is shown.
func (t *Transport) redactLocation(from *url.URL, loc string) string {
	u, err := from.Parse(loc)
	if err != nil {
		return Truncate(t.redact(loc), 200)
	}
	return Truncate(t.redactURL(u), t.maxBody())
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
