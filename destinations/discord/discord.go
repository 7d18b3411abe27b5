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
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Type is the `discord:` destination type. Discord allows a webhook about
// 5 requests per 2 seconds and a channel 30 messages a minute: one a
// second by default, and its 429s pause the destination.
func Type() destinations.Type {
	return destinations.Type{
		Name:      "discord",
		Config:    func() destinations.Block { return &Config{} },
		RateLimit: 1,
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}

// Destination is one Discord webhook.
type Destination struct {
	*chat.Webhook                    // the POST, String and LogValue
	tmpl          *template.Template // nil: the default embed
	now           func() time.Time
}

var _ destinations.Destination = (*Destination)(nil)

// New builds the destination; it validates cfg (and compiles its template).
// Its errors do not name the destination: the caller does.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	opts = opts.WithDefaults()
	u, _ := url.Parse(cfg.WebhookURL.Value()) // Validate parsed it
	q := u.Query()
	// wait=true: Discord answers 200 with the message once it is stored,
	// instead of 204 before; the dispatch log then shows the message id.
	q.Set("wait", "true")
	u.RawQuery = q.Encode()
	secrets := append(destinations.URLSecrets(secret.Secret(u.String())), destinations.URLSecrets(cfg.WebhookURL)...)
	d := &Destination{Webhook: chat.NewWebhook("discord", name, u.String(), secrets, opts), now: opts.Now}
	if cfg.Template != "" {
		t, err := parseTemplate(cfg.Template)
		if err != nil { // unreachable: Validate parsed it
			return nil, fmt.Errorf("discord: template: %w", err)
		}
		d.tmpl = t
	}
	return d, nil
}

// Send posts one message and classifies Discord's answer.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	msg, err := d.Render(dl.Event)
	return d.Deliver(ctx, msg, err, d.classify)
}

// Render is the message Send would post for e.
func (d *Destination) Render(e *event.Event) (Message, error) {
	if d.tmpl == nil {
		return DefaultMessage(e), nil
	}
	return renderTemplate(d.tmpl, e)
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
func (d *Destination) classify(a chat.Answer) destinations.Result {
	status, h, body := a.Status, a.Header, a.Body
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
	res := destinations.Result{Outcome: outcome, Reason: reason, Message: chat.Short(d.Redact(msg))}
	if status == http.StatusTooManyRequests {
		// A webhook's limits (about 5 requests per 2 s, 30 messages a
		// minute per channel) and the global one hold for every delivery
		// of this destination: pause it, not only this delivery.
		res.PauseDestination = true
		res.RetryAfter = rateLimitWait(ae.RetryAfter, h, d.now())
		if ae.Global || strings.EqualFold(h.Get("X-RateLimit-Global"), "true") || h.Get("X-RateLimit-Scope") == "global" {
			res.Message = chat.Short(d.Redact("global rate limit: " + msg))
		}
	}
	return res
}

// maxWait stands for a wait longer than a Duration holds. Converting such
// a float would overflow into a negative Duration, which the scheduler reads
// as "retry now"; a huge wait instead is capped there at max_interval.
const maxWait = time.Duration(1 << 62)

// rateLimitWait is how long Discord asked us to wait: retry_after from the
// body (fractional seconds, the most precise), else X-RateLimit-Reset-After,
// else Retry-After. Fractions round up so that we never come back early.
func rateLimitWait(retryAfter float64, h http.Header, now time.Time) time.Duration {
	seconds := func(f float64) time.Duration {
		switch {
		case !(f > 0): // zero, negative or NaN: no wait given
			return 0
		case f >= maxWait.Seconds(): // +Inf included
			return maxWait
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
	w, _ := destinations.ParseRetryAfter(h.Get("Retry-After"), now)
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
