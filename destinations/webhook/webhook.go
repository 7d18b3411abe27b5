// Package webhook delivers events to any HTTP(S) endpoint through
// go-retryablehttp: a raw, normalized or templated JSON body, configured
// headers, an Idempotency-Key, and optional Standard Webhooks signing.
//
// One Send is one delivery attempt: at most RetryMax+1 requests made at
// once (short in-process retries for blips), each recorded as an Exchange.
// Longer waits (429, Retry-After beyond RetryWaitMax, repeated failures) are
// returned to the scheduler, whose queue is durable.
package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Defaults of Options.
const (
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 2 * time.Second
	// RetryMax is how many times one Send repeats a request in-process.
	RetryMax = 2
)

// drainLimit bounds how much of a response is read to reuse its connection.
const drainLimit = 64 << 10

// Options are the shared adapter options plus the bounds of the in-process
// retries. Base nil means a transport of this destination's own (a clone of
// http.DefaultTransport with keep-alive and up to 64 idle connections per
// host), closed by Close; Now stamps signatures and reads Retry-After dates.
type Options struct {
	destinations.Options
	// RetryWaitMin and RetryWaitMax bound the waits between in-process
	// retries (defaults 250 ms and 2 s). A Retry-After above RetryWaitMax is
	// not waited for here but returned in Result.RetryAfter.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
}

// Destination is one configured webhook destination. It is safe for
// concurrent Sends.
type Destination struct {
	name      string
	url       string
	method    string
	mode      string
	headers   map[string]secret.Secret
	tmpl      *template.Template
	key       []byte // Standard Webhooks key; nil when not signing
	userAgent string
	timeout   time.Duration
	waitMax   time.Duration
	now       func() time.Time
	secrets   []secret.Secret
	client    *retryablehttp.Client
	ownBase   *http.Transport // created here, so closed here
}

var (
	_ destinations.Destination = (*Destination)(nil)
	_ destinations.Capable     = (*Destination)(nil)
)

// New builds a destination from its validated config. Its errors do not
// name the destination: the caller does.
func New(name string, cfg Config, opts Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	opts.Options = opts.Options.WithDefaults()
	d := &Destination{
		name:      name,
		url:       cfg.URL,
		method:    cfg.method(),
		mode:      cfg.body(),
		headers:   cfg.Headers,
		userAgent: "rcrouter/" + opts.Version,
		timeout:   opts.Timeout,
		waitMax:   orDur(opts.RetryWaitMax, DefaultRetryWaitMax),
		now:       opts.Now,
	}
	if d.mode == BodyTemplate {
		t, err := parseTemplate(cfg.Template)
		if err != nil { // Validate parsed it already; kept for safety
			return nil, fmt.Errorf("webhook: template: %w", err)
		}
		d.tmpl = t
	}
	if cfg.SigningSecret != "" {
		key, err := signingKey(cfg.SigningSecret)
		if err != nil {
			return nil, fmt.Errorf("webhook: signing_secret: %w", err)
		}
		d.key = key
		d.secrets = append(d.secrets, cfg.SigningSecret,
			secret.Secret(strings.TrimPrefix(cfg.SigningSecret.Value(), whsecPrefix)))
	}
	secretHeaders := make([]string, 0, len(cfg.Headers))
	for name, v := range cfg.Headers {
		secretHeaders = append(secretHeaders, name)
		d.secrets = append(d.secrets, v)
	}
	d.secrets = append(d.secrets, userinfoSecrets(cfg.URL)...)

	base := opts.Base
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 64 // the default 2 would reconnect under any concurrency
		d.ownBase, base = t, t
	}
	httpClient := &http.Client{
		Transport: &destinations.Transport{
			Base:          base,
			Secrets:       d.secrets,
			SecretHeaders: secretHeaders,
			MaxBody:       opts.MaxBody,
		},
		Timeout: d.timeout,
		// Redirects are not followed: net/http would forward our secret
		// headers (X-Api-Key) to whatever host the redirect names.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	d.client = &retryablehttp.Client{
		HTTPClient:   httpClient,
		RetryWaitMin: orDur(opts.RetryWaitMin, DefaultRetryWaitMin),
		RetryWaitMax: d.waitMax,
		RetryMax:     RetryMax,
		CheckRetry:   d.checkRetry,
		Backoff:      d.backoff,
		// Passthrough: the last response comes back (status and body for the
		// result) instead of a "giving up" error without the status.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: d.prepareRetry,
	}
	// Always ours: never the library's default stderr logger.
	d.client.Logger = leveledLogger{log: opts.Logger.With("destination", name), secrets: d.secrets}
	return d, nil
}

// String names the destination. It exists so that printing a *Destination
// (%v, %+v, %#v, slog) never walks its fields, which hold secrets that fmt
// cannot redact (it does not call methods on unexported fields).
func (d *Destination) String() string { return fmt.Sprintf("webhook %q", d.name) }

// GoString implements fmt.GoStringer; see String.
func (d *Destination) GoString() string { return d.String() }

// LogValue implements slog.LogValuer; see String.
func (d *Destination) LogValue() slog.Value { return slog.StringValue(d.String()) }

// Capabilities: the longest one Send can take is every request timing out,
// with the in-process waits between them. The scheduler's lease must outlast it.
func (d *Destination) Capabilities() destinations.Capabilities {
	return destinations.Capabilities{MaxWait: time.Duration(RetryMax+1)*d.timeout + time.Duration(RetryMax)*d.waitMax}
}

// Close releases idle connections of the destination's own transport.
func (d *Destination) Close() error {
	if d.ownBase != nil {
		d.ownBase.CloseIdleConnections()
	}
	return nil
}

// Send makes one delivery attempt (with up to RetryMax quick in-process
// retries) and classifies the last answer.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	if dl.Event == nil {
		return rejected("no event to send")
	}
	body, err := d.body(dl.Event)
	if err != nil {
		return rejected(err.Error())
	}
	rec := &destinations.Recorder{}
	req, err := retryablehttp.NewRequestWithContext(destinations.WithRecorder(ctx, rec), d.method, d.url, body)
	if err != nil {
		return rejected(d.redact(destinations.UnwrapURLError(err).Error()))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", d.userAgent)
	h.Set("Idempotency-Key", dl.Key)
	h.Set("X-Rcrouter-Event-Id", dl.Event.ID)
	for name, v := range d.headers {
		h.Set(name, v.Value())
	}
	if d.key != nil {
		sign(h, d.key, dl.Key, d.now(), body)
	}

	resp, err := d.client.Do(req)
	res := d.result(ctx, resp, err)
	res.Exchanges = rec.Exchanges()
	return res
}

// prepareRetry re-signs a repeated request with a fresh timestamp: receivers
// reject stale timestamps, and our waits may be seconds long.
func (d *Destination) prepareRetry(req *http.Request) error {
	if d.key == nil {
		return nil
	}
	body, err := req.GetBody()
	if err != nil {
		return fmt.Errorf("webhook %q: re-signing: %w", d.name, err)
	}
	b, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		return fmt.Errorf("webhook %q: re-signing: %w", d.name, err)
	}
	// The copy retryablehttp made shares the header map with the previous
	// request; give this one its own.
	req.Header = req.Header.Clone()
	sign(req.Header, d.key, req.Header.Get(headerWebhookID), d.now(), b)
	return nil
}

// body builds the request body of the configured mode.
func (d *Destination) body(e *event.Event) ([]byte, error) {
	switch d.mode {
	case BodyNormalized:
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("webhook %q: encoding the normalized event: %w", d.name, err)
		}
		return b, nil
	case BodyTemplate:
		b, err := render(d.tmpl, e)
		if err != nil {
			return nil, fmt.Errorf("webhook %q: template: %w", d.name, err)
		}
		return b, nil
	default:
		if len(e.Raw) == 0 {
			return nil, fmt.Errorf("webhook %q: the event has no raw body to pass through", d.name)
		}
		return e.Raw, nil
	}
}

// result classifies what Do returned and releases the response.
func (d *Destination) result(ctx context.Context, resp *http.Response, err error) destinations.Result {
	if resp != nil {
		// The request completed: its status decides, even when the context
		// ended just after.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		resp.Body.Close()
		out, reason := destinations.Classify(resp.StatusCode)
		res := destinations.Result{Outcome: out, Reason: reason, Message: statusMessage(resp.StatusCode)}
		if out == destinations.Retry {
			res.RetryAfter, _ = retryAfter(resp.Header, d.now())
			// A rate limit applies to us, not to one event: hold the
			// whole destination rather than collect more 429s.
			res.PauseDestination = resp.StatusCode == http.StatusTooManyRequests && res.RetryAfter > 0
		}
		return res
	}
	if err == nil { // not expected from retryablehttp; never report success without a response
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork, Message: "no response"}
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// Shutdown: the delivery is released, not failed.
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork, Message: "cancelled"}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout, Message: "deadline of the attempt exceeded"}
	case destinations.IsTimeout(err):
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout,
			Message: fmt.Sprintf("no response within %s", d.timeout)}
	default:
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork,
			Message: d.redact(destinations.UnwrapURLError(err).Error())}
	}
}

func (d *Destination) redact(s string) string { return secret.Redact(s, d.secrets...) }

func rejected(msg string) destinations.Result {
	return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: msg}
}

// statusMessage is "HTTP 503 Service Unavailable".
func statusMessage(code int) string {
	return strings.TrimSpace(fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
}

// userinfoSecrets are the credentials of a URL's userinfo, and their Basic
// encoding (a response may echo the Authorization header net/http builds).
func userinfoSecrets(raw string) []secret.Secret {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	out := []secret.Secret{secret.Secret(user), secret.Secret(pass),
		secret.Secret(base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)))}
	return out
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
