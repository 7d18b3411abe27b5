package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// maxAnswer bounds how much of a webhook's answer is read for classifying
// it (a message or an error object is far smaller); the dispatch record
// keeps its own truncated copy.
const maxAnswer = 64 << 10

// Client is the HTTP client of a chat webhook: every request through the
// capturing Transport, which redacts secrets and shows the URL as
// scheme://host/<secret>, and no redirects (a webhook does not redirect;
// following one would post the message somewhere nobody configured).
func Client(opts destinations.Options, secrets []secret.Secret) *http.Client {
	return &http.Client{
		Transport:     &destinations.Transport{Base: opts.Base, Secrets: secrets, SecretURL: true, MaxBody: opts.MaxBody},
		Timeout:       opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Answer is what a webhook answered.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Post makes exactly one JSON POST to url and returns the answer and the
// exchange recorded for the dispatch log. err is a transport error (see
// TransportResult); an HTTP error status is an Answer.
func Post(ctx context.Context, client *http.Client, url, userAgent string, body []byte) (Answer, []destinations.Exchange, error) {
	rec := &destinations.Recorder{}
	req, err := http.NewRequestWithContext(destinations.WithRecorder(ctx, rec), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, rec.Exchanges(), err
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}, rec.Exchanges(), nil
}

// TransportResult classifies an error of Post: no answer came, so the
// attempt is retried (timeout or network); label names the destination
// ("discord destination ops"), redact hides the webhook URL in the text.
func TransportResult(label string, err error, redact func(string) string) destinations.Result {
	reason := destinations.ReasonNetwork
	var t interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || (errors.As(err, &t) && t.Timeout()) {
		reason = destinations.ReasonTimeout
	}
	return destinations.Result{Outcome: destinations.Retry, Reason: reason,
		Message: fmt.Sprintf("%s: %s", label, Short(redact(err.Error())))}
}

// Short bounds a message for the dispatch log's error column.
func Short(s string) string { return destinations.Truncate(s, 200) }
