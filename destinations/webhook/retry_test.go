package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   time.Duration
		ok     bool
	}{
		{"absent", "", 0, false},
		{"seconds", "120", 120 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", " 7 ", 7 * time.Second, true},
		{"negative", "-5", 0, false},
		{"http date", t0.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second, true},
		{"RFC 850 date", t0.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute, true},
		{"date in the past", t0.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"garbage", "soon", 0, false},
		{"huge", "99999999999999999", time.Duration(1<<62) / time.Second * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Retry-After", tt.header)
			}
			got, ok := retryAfter(h, t0)
			if got != tt.want || ok != tt.ok {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCheckRetry(t *testing.T) {
	d := &Destination{waitMax: 2 * time.Second, now: func() time.Time { return t0 }}
	resp := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		resp    *http.Response
		err     error
		retry   bool
		wantErr bool
	}{
		{"200", context.Background(), resp(200, ""), nil, false, false},
		{"400", context.Background(), resp(400, ""), nil, false, false},
		{"404", context.Background(), resp(404, ""), nil, false, false},
		{"408", context.Background(), resp(408, ""), nil, true, false},
		{"425", context.Background(), resp(425, ""), nil, true, false},
		{"429 never in-process", context.Background(), resp(429, "1"), nil, false, false},
		{"500", context.Background(), resp(500, ""), nil, true, false},
		{"501", context.Background(), resp(501, ""), nil, false, false},
		{"503 short Retry-After", context.Background(), resp(503, "2"), nil, true, false},
		{"503 long Retry-After", context.Background(), resp(503, "3"), nil, false, false},
		{"network error", context.Background(), nil, &url.Error{Op: "Post", URL: "x", Err: errors.New("connection reset")}, true, false},
		{"certificate error", context.Background(), nil, &url.Error{Op: "Post", URL: "x", Err: &tls.CertificateVerificationError{Err: errors.New("expired")}}, false, false},
		{"cancelled, would retry", cancelled, resp(503, ""), nil, false, true},
		{"cancelled, final answer kept", cancelled, resp(200, ""), nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := d.checkRetry(tt.ctx, tt.resp, tt.err)
			if retry != tt.retry || (err != nil) != tt.wantErr {
				t.Errorf("checkRetry = %v, %v; want %v, error %v", retry, err, tt.retry, tt.wantErr)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	d := &Destination{now: func() time.Time { return t0 }}
	lo, hi := 250*time.Millisecond, 2*time.Second
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		min     time.Duration
		max     time.Duration
	}{
		{"first retry", 0, nil, lo, lo},
		{"second retry", 1, nil, lo, 500 * time.Millisecond},
		{"third retry", 2, nil, lo, time.Second},
		{"capped", 10, nil, lo, hi},
		{"huge attempt does not overflow", 80, nil, lo, hi},
		{"Retry-After honoured", 0, &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"1"}}}, time.Second, time.Second},
		{"Retry-After capped", 0, &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"9"}}}, hi, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 { // jitter: every draw stays in bounds
				if got := d.backoff(lo, hi, tt.attempt, tt.resp); got < tt.min || got > tt.max {
					t.Fatalf("backoff = %v, want within [%v, %v]", got, tt.min, tt.max)
				}
			}
		})
	}
}
