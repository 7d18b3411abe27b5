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
