package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// maxAnswer bounds how much of a webhook's answer is read for classifying
// it (a message or an error object is far smaller); the dispatch record
// keeps its own truncated copy.
const maxAnswer = 64 << 10

// Webhook is the HTTP side of one chat destination whose URL is its
// credential (Discord, Teams): one JSON POST per attempt through the
// capturing Transport, which redacts the secrets and shows the URL as
// scheme://host/<secret>, and no redirects (a webhook does not redirect;
// following one would post the message somewhere nobody configured).
// Adapters embed it and classify the answers themselves.
type Webhook struct {
	typ, name string
	url       string
	userAgent string
	client    *http.Client
	secrets   []secret.Secret
}

// NewWebhook is the webhook of destination name of type typ ("discord"),
// posting to url; secrets are every form of the URL's credential
// (destinations.URLSecrets). opts must have its defaults.
func NewWebhook(typ, name, url string, secrets []secret.Secret, opts destinations.Options) *Webhook {
	return &Webhook{
		typ: typ, name: name, url: url,
		userAgent: "rcrouter/" + opts.Version,
		secrets:   secrets,
		client: &http.Client{
			Transport:     &destinations.Transport{Base: opts.Base, Secrets: secrets, SecretURL: true, MaxBody: opts.MaxBody},
			Timeout:       opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// String names the destination without its webhook URL.
func (w *Webhook) String() string { return w.typ + " destination " + w.name }

// LogValue logs the destination as its name and type, never its URL.
func (w *Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", w.name), slog.String("type", w.typ))
}

// Redact hides the webhook's secrets in s.
func (w *Webhook) Redact(s string) string { return secret.Redact(s, w.secrets...) }

// Answer is what a webhook answered.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Deliver makes one attempt: msg (or renderErr, a template that failed for
// this event: permanent) is posted as JSON once, and classify judges the
// answer. No answer at all (timeout, network) is retried.
func (w *Webhook) Deliver(ctx context.Context, msg any, renderErr error, classify func(Answer) destinations.Result) destinations.Result {
	if renderErr != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "template: " + renderErr.Error()}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "encode message: " + err.Error()}
	}
	rec := &destinations.Recorder{}
	req, err := http.NewRequestWithContext(destinations.WithRecorder(ctx, rec), http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil { // the URL passed Validate; nothing went out
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: Short(w.Redact(err.Error()))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.userAgent)
	var res destinations.Result
	if resp, err := w.client.Do(req); err != nil {
		res = w.transportResult(err)
	} else {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		res = classify(Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw})
	}
	res.Exchanges = rec.Exchanges()
	return res
}

// transportResult classifies a request that got no answer: retried, as a
// timeout or a network error.
func (w *Webhook) transportResult(err error) destinations.Result {
	reason := destinations.ReasonNetwork
	if errors.Is(err, context.Canceled) || destinations.IsTimeout(err) {
		reason = destinations.ReasonTimeout
	}
	return destinations.Result{Outcome: destinations.Retry, Reason: reason,
		Message: Short(w.Redact(err.Error()))}
}

// Short bounds a message for the dispatch log's error column.
func Short(s string) string { return destinations.Truncate(s, 200) }
