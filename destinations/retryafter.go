package destinations

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter bounds a delay-seconds value so that it cannot overflow a
// Duration; the scheduler caps every wait at max_interval anyway.
const maxRetryAfter = time.Duration(1<<62) / time.Second * time.Second

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds
// or an HTTP date. ok is false when v is empty or not one of the two, so the
// caller falls back to its backoff. A date in the past means "now": the
// server's clock says the wait is over, so the result is zero with ok true
// (not a reason to wait a backoff longer than asked). A future date is
// rounded up to the second, so a retry never comes early.
func ParseRetryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if strings.Trim(v, "0123456789") == "" {
		return maxRetryAfter, true // more digits than int64 holds: as long as it gets
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := at.Sub(now)
	if d <= 0 {
		return 0, true
	}
	return (d + time.Second - 1).Truncate(time.Second), true
}
