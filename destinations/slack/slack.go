// Package slack posts events to Slack through slack-go: an incoming webhook
// (webhook_url) or a bot token and channel (chat.postMessage). The default
// message is Block Kit per lifecycle, in the words of RevenueCat's own Slack
// integration; a `template:` can replace the blocks.
package slack

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Destination is one Slack destination.
type Destination struct {
	name    string
	cfg     Config
	log     *slog.Logger
	http    *http.Client
	api     *slackapi.Client   // bot mode only
	tmpl    *template.Template // nil: the default message
	secrets []secret.Secret
	now     func() time.Time
}

var _ destinations.Destination = (*Destination)(nil)

// New builds the destination; it validates cfg (and compiles its template).
// Its errors do not name the destination: the caller does.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	opts = opts.WithDefaults()
	d := &Destination{
		name: name,
		cfg:  cfg,
		now:  opts.Now,
		log:  opts.Logger.With("destination", name),
		// The token travels form-encoded too before botAuth moves it, so its
		// escaped form is a secret as well.
		secrets: append([]secret.Secret{cfg.WebhookURL, cfg.Token, secret.Secret(url.QueryEscape(cfg.Token.Value()))},
			urlPathSecrets(cfg.WebhookURL)...),
	}
	if cfg.Template != "" {
		t, err := parseTemplate(cfg.Template)
		if err != nil { // unreachable: Validate parsed it
			return nil, fmt.Errorf("slack: template: %w", err)
		}
		d.tmpl = t
	}
	capture := &destinations.Transport{
		Base:      headerTap{base: opts.Base},
		Secrets:   d.secrets,
		SecretURL: cfg.WebhookURL.Value() != "",
		MaxBody:   opts.MaxBody,
	}
	var rt http.RoundTripper = userAgent{next: capture, value: "rcrouter/" + opts.Version}
	if cfg.Token.Value() != "" {
		rt = botAuth{next: rt, token: cfg.Token.Value()}
	}
	d.http = &http.Client{
		Transport: rt,
		Timeout:   opts.Timeout,
		// Slack does not redirect these calls; following one would send the
		// message (and Authorization) somewhere we did not configure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cfg.Token.Value() != "" {
		apiURL := cfg.APIURL
		if apiURL == "" {
			apiURL = DefaultAPIURL
		}
		if !strings.HasSuffix(apiURL, "/") {
			apiURL += "/" // slack-go appends the method name
		}
		// No OptionRetry: the scheduler owns retries.
		d.api = slackapi.New(cfg.Token.Value(),
			slackapi.OptionAPIURL(apiURL),
			slackapi.OptionHTTPClient(d.http),
			slackapi.OptionLog(debugLog{d.log}))
	}
	return d, nil
}

// Send posts one message and classifies Slack's answer.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	msg, err := d.Render(dl.Event)
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "template: " + err.Error()}
	}
	rec := &destinations.Recorder{}
	tap := &responseHeaders{}
	ctx = withResponseHeaders(destinations.WithRecorder(ctx, rec), tap)
	no := false
	if d.api == nil {
		err = slackapi.PostWebhookCustomHTTPContext(ctx, d.cfg.WebhookURL.Value(), d.http, &slackapi.WebhookMessage{
			Text:        msg.Text,
			Blocks:      &slackapi.Blocks{BlockSet: msg.Blocks},
			UnfurlLinks: &no,
			UnfurlMedia: &no,
		})
	} else {
		_, _, err = d.api.PostMessageContext(ctx, d.cfg.Channel,
			slackapi.MsgOptionText(msg.Text, false), // already escaped
			slackapi.MsgOptionBlocks(msg.Blocks...),
			slackapi.MsgOptionDisableLinkUnfurl(),
			slackapi.MsgOptionDisableMediaUnfurl())
	}
	res := d.classify(err, rec.Exchanges(), tap.retryAfter)
	res.Exchanges = rec.Exchanges()
	return res
}

// Render is the message Send would post for e.
func (d *Destination) Render(e *event.Event) (Message, error) {
	if d.tmpl == nil {
		return DefaultMessage(e, d.cfg.ProjectID), nil
	}
	return renderTemplate(d.tmpl, e, d.cfg.ProjectID)
}

// retryableErrors are chat.postMessage error codes that may pass on their
// own; every other code (channel_not_found, not_in_channel, invalid_auth,
// invalid_blocks, msg_too_long, …) needs someone to change something.
var retryableErrors = map[string]bool{
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// classify maps slack-go's error and the recorded exchange to an outcome.
// Slack's body text ("channel_not_found") is the message: slack-go drops
// it, the capturing Transport kept it.
func (d *Destination) classify(err error, xs []destinations.Exchange, retryAfterHeader string) destinations.Result {
	if err == nil {
		return destinations.Result{Outcome: destinations.Delivered}
	}
	var last destinations.Exchange
	if len(xs) > 0 {
		last = xs[len(xs)-1]
	}
	body := strings.TrimSpace(last.Response.Body)
	rateLimited := func(msg string) destinations.Result {
		// 429 applies to the whole webhook or app: pause the destination
		// until Retry-After, not only this delivery.
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited,
			RetryAfter: d.retryAfter(retryAfterHeader), PauseDestination: true, Message: msg}
	}
	var rl *slackapi.RateLimitedError
	var apiErr slackapi.SlackErrorResponse
	var status slackapi.StatusCodeError
	switch {
	case errors.As(err, &rl) || last.Response.StatusCode == http.StatusTooManyRequests:
		return rateLimited(cmp.Or(chat.Short(body), "rate_limited"))
	case errors.As(err, &apiErr):
		code := d.redact(apiErr.Err)
		switch {
		case code == "ratelimited" || code == "rate_limited":
			return rateLimited(code)
		case retryableErrors[code]:
			return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: code}
		}
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: code}
	case errors.As(err, &status):
		outcome, reason := destinations.Classify(status.Code)
		if outcome == destinations.Delivered {
			// slack-go wants exactly 200; any 2xx is success (DESIGN §7).
			return destinations.Result{Outcome: destinations.Delivered}
		}
		return destinations.Result{Outcome: outcome, Reason: reason,
			Message: cmp.Or(chat.Short(d.redact(body)), fmt.Sprintf("HTTP %d", status.Code))}
	case len(xs) > 0 && last.Response.Error != "":
		reason := destinations.ReasonNetwork
		if destinations.IsTimeout(err) {
			reason = destinations.ReasonTimeout
		}
		return destinations.Result{Outcome: destinations.Retry, Reason: reason,
			Message: chat.Short(last.Response.Error)}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout,
			Message: d.redact(err.Error())}
	}
	// No request went out (it could not be built): repeating cannot help.
	return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
		Message: chat.Short(d.redact(err.Error()))}
}

func (d *Destination) redact(s string) string { return secret.Redact(s, d.secrets...) }

// responseHeaders carries the Retry-After of a Send's response back from the
// transport; the dispatch record keeps no headers, and slack-go only parses
// the seconds form.
type responseHeaders struct{ retryAfter string }

type responseHeadersKey struct{}

func withResponseHeaders(ctx context.Context, h *responseHeaders) context.Context {
	return context.WithValue(ctx, responseHeadersKey{}, h)
}

// headerTap is the innermost transport: it notes Retry-After for classify.
type headerTap struct{ base http.RoundTripper }

func (t headerTap) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if h, ok := req.Context().Value(responseHeadersKey{}).(*responseHeaders); ok && err == nil {
		h.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}

// userAgent names us on every request (slack-go sends Go's default).
type userAgent struct {
	next  http.RoundTripper
	value string
}

func (u userAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", u.value)
	return u.next.RoundTrip(r)
}

// botAuth moves the bot token from the form body, where slack-go v0.35.0
// puts it for chat.postMessage, to the Authorization header, which Slack
// prefers and the capturing Transport always redacts: the dispatch log
// shows the form without a token.
type botAuth struct {
	next  http.RoundTripper
	token string
}

func (b botAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if form, err := url.ParseQuery(string(raw)); err == nil && form.Has("token") {
			form.Del("token")
			raw = []byte(form.Encode())
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
		r.ContentLength = int64(len(raw))
	}
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// debugLog gives slack-go's debug output (off unless OptionDebug) to slog.
type debugLog struct{ log *slog.Logger }

func (l debugLog) Output(_ int, s string) error {
	l.log.Debug("slack-go: " + s)
	return nil
}

// urlPathSecrets are the parts of a secret webhook URL that an error page
// may quote on their own ("Cannot POST /services/T…/B…/<token>"): its path,
// and its last segment, the token itself.
func urlPathSecrets(raw secret.Secret) []secret.Secret {
	u, err := url.Parse(raw.Value())
	if err != nil || u.Path == "" {
		return nil
	}
	out := []secret.Secret{secret.Secret(u.EscapedPath()), secret.Secret(u.Path)}
	if i := strings.LastIndex(strings.TrimSuffix(u.Path, "/"), "/"); i >= 0 {
		out = append(out, secret.Secret(strings.Trim(u.Path[i:], "/")))
	}
	return out
}

// retryAfter is the pause Slack asked for; zero (the scheduler's backoff)
// when it gave none, and zero too for a date already past.
func (d *Destination) retryAfter(v string) time.Duration {
	wait, _ := destinations.ParseRetryAfter(v, d.now())
	return wait
}

// String names the destination without its webhook URL or token.
func (d *Destination) String() string { return "slack destination " + d.name }

// GoString keeps %#v from printing the fields, which hold secrets fmt cannot
// redact (it calls no methods on unexported fields).
func (d *Destination) GoString() string { return d.String() }

// LogValue logs the destination as its name and mode, never its URL or token.
func (d *Destination) LogValue() slog.Value {
	mode := "webhook"
	if d.api != nil {
		mode = "bot"
	}
	return slog.GroupValue(slog.String("name", d.name), slog.String("type", "slack"), slog.String("mode", mode))
}
