package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// checkRetry is the in-process retry policy (DESIGN §7 classes): 408, 425,
// 5xx except 501 and network errors are repeated a few times at once; 429 and
// any Retry-After longer than RetryWaitMax go back to the scheduler, whose
// wait is durable, instead of holding a goroutine asleep.
func (d *Destination) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err == nil {
		out, _ := destinations.Classify(resp.StatusCode)
		if out != destinations.Retry || resp.StatusCode == http.StatusTooManyRequests {
			return false, nil
		}
		if wait, ok := retryAfter(resp.Header, d.now()); ok && wait > d.waitMax {
			return false, nil
		}
	} else if !retryableError(err) {
		return false, nil
	}
	// Checked last: a response that arrived while shutting down is still
	// reported as it is, only a further request is not made.
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return true, nil
}

// retryableError is false for transport errors that repeating within the
// same second cannot fix (certificates); the scheduler still retries them.
func retryableError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return !(errors.As(err, &verify) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid))
}

// backoff waits what Retry-After asks (checkRetry has already refused waits
// above RetryWaitMax), else a random time between RetryWaitMin and
// RetryWaitMin·2^attempt capped at RetryWaitMax (jitter spreads a burst of
// retries against a recovering server).
func (d *Destination) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if wait, ok := retryAfter(resp.Header, d.now()); ok {
			return min(wait, hi)
		}
	}
	ceiling := hi
	if attempt < 30 && lo<<attempt < hi {
		ceiling = lo << attempt
	}
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo+1)
}

// retryAfter reads the Retry-After of a response (see destinations.ParseRetryAfter).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	return destinations.ParseRetryAfter(h.Get("Retry-After"), now)
}

// leveledLogger adapts slog to retryablehttp.LeveledLogger. Everything goes
// to debug: the outcome of each Send is reported once, by the scheduler, and
// the library's own lines are only for tracing. Values are redacted (the
// library logs URLs with their user name).
type leveledLogger struct {
	log     *slog.Logger
	secrets []secret.Secret
}

func (l leveledLogger) Error(msg string, kv ...any) { l.debug(msg, kv) }
func (l leveledLogger) Warn(msg string, kv ...any)  { l.debug(msg, kv) }
func (l leveledLogger) Info(msg string, kv ...any)  { l.debug(msg, kv) }
func (l leveledLogger) Debug(msg string, kv ...any) { l.debug(msg, kv) }

func (l leveledLogger) debug(msg string, kv []any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	args := make([]any, len(kv))
	for i, v := range kv {
		if i%2 == 1 {
			v = l.redact(v)
		}
		args[i] = v
	}
	l.log.Debug("retryablehttp: "+msg, args...)
}

func (l leveledLogger) redact(v any) any {
	switch v := v.(type) {
	case string:
		return secret.Redact(v, l.secrets...)
	case error:
		return secret.Redact(v.Error(), l.secrets...)
	case fmt.Stringer:
		return secret.Redact(v.String(), l.secrets...)
	}
	return v
}
