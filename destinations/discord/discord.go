// Package discord posts events to a Discord channel webhook: one embed per
// lifecycle in the words of RevenueCat's Slack integration (which RevenueCat
// documents for Discord too), or embeds from a `template:`.
//
// It uses the shared HTTP client with the capturing Transport, not
// github.com/bwmarrin/discordgo (v0.29.0). discordgo cannot take our
// webhook_url: WebhookExecute builds the URL from package-level endpoint
// variables (always https://discord.com/), so a proxy, a regional URL or a
// test fake would mean mutating globals. Its rate limiter also sleeps
// before a request when a bucket is empty and repeats 429s and 502s
// itself, hidden from the scheduler that owns waits and retries, and a 429
// with a non-JSON body (Cloudflare's) loses its status. One POST of our
// own JSON makes exactly one request, recorded and classified here.
//
// Every message carries allowed_mentions {"parse": []}, so nothing in it
// can ping, and event text is escaped so that it cannot format either.
package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// DefaultTimeout bounds one request when Options.Timeout is not set.
const DefaultTimeout = 10 * time.Second

// Options are the runtime settings that do not come from the `discord:` block.
type Options struct {
	Timeout time.Duration // per request; default 10s
	MaxBody int           // bytes of request and response bodies kept per exchange
	Logger  *slog.Logger  // default slog.Default()
	Base    http.RoundTripper
	Version string // in the User-Agent, rcrouter/<version>; default "dev"
}

// Destination is one Discord webhook.
type Destination struct {
	name    string
	url     string // webhook_url with wait=true
	ua      string
	log     *slog.Logger
	http    *http.Client
	tmpl    *template.Template // nil: the default embed
	secrets []secret.Secret
}

var _ destinations.Destination = (*Destination)(nil)

// New builds the destination; it validates cfg (and compiles its template).
func New(name string, cfg Config, opts Options) (*Destination, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("discord destination %s: %w", name, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	u, _ := url.Parse(cfg.WebhookURL.Value()) // Validate parsed it
	q := u.Query()
	// wait=true: Discord answers 200 with the message once it is stored,
	// instead of 204 before; the dispatch log then shows the message id.
	q.Set("wait", "true")
	u.RawQuery = q.Encode()
	d := &Destination{
		name:    name,
		url:     u.String(),
		ua:      "rcrouter/" + opts.Version,
		log:     opts.Logger.With("destination", name),
		secrets: append(destinations.URLSecrets(secret.Secret(u.String())), destinations.URLSecrets(cfg.WebhookURL)...),
	}
	if cfg.Template != "" {
		t, err := parseTemplate(cfg.Template)
		if err != nil { // unreachable: Validate parsed it
			return nil, fmt.Errorf("discord destination %s: template: %w", name, err)
		}
		d.tmpl = t
	}
	d.http = &http.Client{
		Transport: &destinations.Transport{Base: opts.Base, Secrets: d.secrets, SecretURL: true, MaxBody: opts.MaxBody},
		Timeout:   opts.Timeout,
		// Discord does not redirect webhook calls; following one would post
		// the message somewhere we did not configure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d, nil
}

// Send posts one message and classifies Discord's answer.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	msg, err := d.Render(dl.Event)
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: fmt.Sprintf("discord destination %s: template: %v", d.name, err)}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: fmt.Sprintf("discord destination %s: encode message: %v", d.name, err)}
	}
	rec := &destinations.Recorder{}
	req, err := http.NewRequestWithContext(destinations.WithRecorder(ctx, rec), http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: fmt.Sprintf("discord destination %s: %s", d.name, d.redact(err.Error()))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.ua)
	resp, err := d.http.Do(req)
	var res destinations.Result
	if err != nil {
		res = d.transportError(err)
	} else {
		// The whole answer is small (a message, or an error object); the
		// dispatch record keeps its own truncated copy.
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		res = d.classify(resp.StatusCode, resp.Header, raw)
	}
	res.Exchanges = rec.Exchanges()
	return res
}

// Render is the message Send would post for e.
func (d *Destination) Render(e *event.Event) (Message, error) {
	if d.tmpl == nil {
		return DefaultMessage(e), nil
	}
	return renderTemplate(d.tmpl, e)
}

func (d *Destination) transportError(err error) destinations.Result {
	reason := destinations.ReasonNetwork
	var t interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || (errors.As(err, &t) && t.Timeout()) {
		reason = destinations.ReasonTimeout
	}
	return destinations.Result{Outcome: destinations.Retry, Reason: reason,
		Message: fmt.Sprintf("discord destination %s: %s", d.name, short(d.redact(err.Error())))}
}

// apiError is Discord's error body: {"message": "Unknown Webhook", "code":
// 10015}, with "errors" for Invalid Form Body and "retry_after" (seconds,
// fractional) and "global" for 429.
type apiError struct {
	Message    string          `json:"message"`
	Code       int             `json:"code"`
	Errors     json.RawMessage `json:"errors"`
	RetryAfter float64         `json:"retry_after"`
	Global     bool            `json:"global"`
}

// classify maps Discord's answer to an outcome (DESIGN §7), with Discord's
// own words as the message: "Unknown Webhook (code 10015)" is what ops need
// to see to know the webhook was deleted.
func (d *Destination) classify(status int, h http.Header, body []byte) destinations.Result {
	outcome, reason := destinations.Classify(status)
	if outcome == destinations.Delivered {
		return destinations.Result{Outcome: destinations.Delivered}
	}
	var ae apiError
	isJSON := json.Unmarshal(body, &ae) == nil && (ae.Message != "" || ae.Code != 0)
	msg := fmt.Sprintf("HTTP %d", status)
	switch {
	case isJSON:
		msg = ae.Message
		if ae.Code != 0 {
			msg += fmt.Sprintf(" (code %d)", ae.Code)
		}
		if field := firstFieldError(ae.Errors); field != "" {
			msg += ": " + field
		}
	case len(bytes.TrimSpace(body)) > 0:
		msg = strings.TrimSpace(string(body))
	}
	res := destinations.Result{Outcome: outcome, Reason: reason, Message: short(d.redact(msg))}
	if status == http.StatusTooManyRequests {
		// A webhook's limits (about 5 requests per 2 s, 30 messages a
		// minute per channel) and the global one hold for every delivery
		// of this destination: pause it, not only this delivery.
		res.PauseDestination = true
		res.RetryAfter = rateLimitWait(ae.RetryAfter, h)
		if ae.Global || strings.EqualFold(h.Get("X-RateLimit-Global"), "true") || h.Get("X-RateLimit-Scope") == "global" {
			res.Message = short(d.redact("global rate limit: " + msg))
		}
	}
	return res
}

// rateLimitWait is how long Discord asked us to wait: retry_after from the
// body (fractional seconds, the most precise), else X-RateLimit-Reset-After,
// else Retry-After. Fractions round up so that we never come back early.
func rateLimitWait(retryAfter float64, h http.Header) time.Duration {
	seconds := func(f float64) time.Duration {
		if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		return time.Duration(math.Ceil(f*1000)) * time.Millisecond
	}
	if w := seconds(retryAfter); w > 0 {
		return w
	}
	if f, err := strconv.ParseFloat(h.Get("X-RateLimit-Reset-After"), 64); err == nil {
		if w := seconds(f); w > 0 {
			return w
		}
	}
	w, _ := destinations.ParseRetryAfter(h.Get("Retry-After"), time.Now())
	return w
}

// firstFieldError names the first field Discord rejected in an Invalid Form
// Body answer, "embeds.0.description: Must be 4096 or fewer in length.", so
// that ops see which part of a template is wrong.
func firstFieldError(raw json.RawMessage) string {
	var walk func(path string, v any) string
	walk = func(path string, v any) string {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if errs, ok := m["_errors"].([]any); ok && len(errs) > 0 {
			if e, ok := errs[0].(map[string]any); ok {
				if s, ok := e["message"].(string); ok {
					return strings.TrimPrefix(path, ".") + ": " + s
				}
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s := walk(path+"."+k, m[k]); s != "" {
				return s
			}
		}
		return ""
	}
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return walk("", v)
}

func (d *Destination) redact(s string) string { return secret.Redact(s, d.secrets...) }

func short(s string) string { return destinations.Truncate(s, 200) }
