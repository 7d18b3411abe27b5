package destinations

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		now  time.Time
		want time.Duration
		ok   bool
	}{
		{"absent", "", now, 0, false},
		{"seconds", "120", now, 120 * time.Second, true},
		{"zero", "0", now, 0, true},
		{"spaces", " 7 ", now, 7 * time.Second, true},
		{"negative", "-5", now, 0, false},
		{"garbage", "soon", now, 0, false},
		{"huge", "99999999999999999", now, maxRetryAfter, true},
		{"beyond int64", "99999999999999999999", now, maxRetryAfter, true},
		{"http date", "Thu, 01 Jan 2026 00:02:00 GMT", now, 2 * time.Minute, true},
		{"RFC 850 date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), now, time.Minute, true},
		{"date rounded up to the second", now.Add(45 * time.Second).Format(http.TimeFormat), now.Add(300 * time.Millisecond), 45 * time.Second, true},
		// A past date means the wait is over: retry now, not after a backoff.
		{"date in the past is now", "Wed, 31 Dec 2025 23:00:00 GMT", now, 0, true},
		{"date equal to now is now", now.Format(http.TimeFormat), now, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, tt.now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
