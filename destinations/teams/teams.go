// Package teams posts events to Microsoft Teams through a Workflows webhook
// (or a legacy incoming webhook): an Adaptive Card per lifecycle in the
// words of RevenueCat's Slack integration, or a card from a `template:`.
//
// There is no official Go SDK for Teams webhooks; one POST of our own JSON
// through the shared HTTP client makes exactly one request, recorded and
// classified here. Event text in the default card travels in RichTextBlock
// TextRuns, which Teams shows without markdown; where it must go into
// markdown (FactSet values, template TextBlocks) it is escaped.
//
// Answers: Workflows accepts with 202 (the flow runs afterwards); legacy
// webhooks answer 200 with "1", and report some failures as 200 with
// "Webhook message delivery failed with error: Microsoft Teams endpoint
// returned HTTP error 429 …", which is classified by the code it quotes.
package teams

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
)

// Type is the `teams:` destination type: one message a second by default
// (Teams throttles a webhook at a few per second), and its 429s pause the
// destination.
func Type() destinations.Type {
	return destinations.Type{
		Name:      "teams",
		Config:    func() destinations.Block { return &Config{} },
		RateLimit: 1,
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}

// Destination is one Teams webhook.
type Destination struct {
	*chat.Webhook                    // the POST, String and LogValue
	tmpl          *template.Template // nil: the default card
	now           func() time.Time
}

var _ destinations.Destination = (*Destination)(nil)

// New builds the destination; it validates cfg (and compiles its template).
// Its errors do not name the destination: the caller does.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("teams: %w", err)
	}
	opts = opts.WithDefaults()
	d := &Destination{
		Webhook: chat.NewWebhook("teams", name, cfg.WebhookURL.Value(), destinations.URLSecrets(cfg.WebhookURL), opts),
		now:     opts.Now,
	}
	if cfg.Template != "" {
		t, err := parseTemplate(cfg.Template)
		if err != nil { // unreachable: Validate parsed it
			return nil, fmt.Errorf("teams: template: %w", err)
		}
		d.tmpl = t
	}
	return d, nil
}

// Send posts one card and classifies Teams' answer.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	msg, err := d.Render(dl.Event)
	return d.Deliver(ctx, msg, err, d.classify)
}

// Render is the message Send would post for e.
func (d *Destination) Render(e *event.Event) (Message, error) {
	if d.tmpl == nil {
		card, err := json.Marshal(DefaultCard(e))
		return newMessage(card), err
	}
	card, err := renderTemplate(d.tmpl, e)
	return newMessage(card), err
}

// legacyFailure starts how a legacy incoming webhook reports, with status
// 200, that Teams refused the message; the code it quotes says why.
const legacyFailure = "Webhook message delivery failed"

var legacyCode = regexp.MustCompile(`HTTP error ([0-9]{3})`)

// apiError is the error body of Workflows (Azure Logic Apps and Power
// Automate): {"error": {"code": "WorkflowNotFound", "message": "…"}}.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify maps Teams' answer to an outcome (DESIGN §7): 2xx success
// (Workflows' 202 Accepted included) unless a legacy webhook wrapped a
// failure in 200; 400, 401, 403, 404 and 413 permanent; 429 and 5xx
// retried, 429 for the whole destination after Retry-After.
func (d *Destination) classify(a chat.Answer) destinations.Result {
	body := strings.TrimSpace(string(a.Body))
	status := a.Status
	if status >= 200 && status < 300 {
		if !strings.HasPrefix(body, legacyFailure) {
			return destinations.Result{Outcome: destinations.Delivered}
		}
		m := legacyCode.FindStringSubmatch(body)
		if m == nil {
			// "Error contacting Microsoft Teams endpoint": Teams was not reached.
			return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
				Message: chat.Short(d.Redact(body))}
		}
		status, _ = strconv.Atoi(m[1])
	}
	outcome, reason := destinations.Classify(status)
	msg := fmt.Sprintf("HTTP %d", status)
	var ae apiError
	switch {
	case json.Unmarshal(a.Body, &ae) == nil && (ae.Error.Code != "" || ae.Error.Message != ""):
		msg = strings.TrimPrefix(ae.Error.Code+": "+ae.Error.Message, ": ")
	case body != "":
		msg = body
	}
	res := destinations.Result{Outcome: outcome, Reason: reason, Message: chat.Short(d.Redact(msg))}
	if status == http.StatusTooManyRequests {
		// Teams throttles the webhook (or the flow) as a whole: pause the
		// destination, not only this delivery.
		res.PauseDestination = true
		res.RetryAfter, _ = destinations.ParseRetryAfter(a.Header.Get("Retry-After"), d.now())
	}
	return res
}

// compact is a template's card on one line, as the default card is sent.
func compact(raw []byte) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
