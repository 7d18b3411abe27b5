package destinations

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
)

// timeoutErr is a net.Error that says Timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"deadline", context.DeadlineExceeded, true},
		{"deadline wrapped in url.Error", &url.Error{Op: "Post", URL: "https://x.example/", Err: context.DeadlineExceeded}, true},
		{"net timeout", fmt.Errorf("read: %w", timeoutErr{}), true},
		{"os deadline", os.ErrDeadlineExceeded, true},
		{"cancelled", context.Canceled, false},
		{"refused", errors.New("connect: connection refused"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsTimeout(tt.err); got != tt.want {
				t.Errorf("IsTimeout(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestUnwrapURLError(t *testing.T) {
	inner := errors.New("connect: connection refused")
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"url.Error loses the URL", &url.Error{Op: "Post", URL: "https://hooks.example/T0/secret-token", Err: inner}, inner.Error()},
		{"wrapped url.Error", fmt.Errorf("send: %w", &url.Error{Op: "Post", URL: "https://hooks.example/secret-token", Err: inner}), inner.Error()},
		{"other errors as they are", inner, inner.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := UnwrapURLError(tt.err).Error(); got != tt.want {
				t.Errorf("UnwrapURLError = %q, want %q", got, tt.want)
			}
		})
	}
}
