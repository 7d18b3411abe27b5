package destinations

import (
	"context"
	"errors"
	"net"
	"net/url"
)

// IsTimeout reports whether a request failed for lack of time: its
// context's deadline passed or the network said so (a dial or read
// timeout). Such a failure is retried with ReasonTimeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// UnwrapURLError drops net/http's `Post "<url>": ` prefix: the URL may carry
// credentials, and the dispatch record shows the (redacted) URL already.
func UnwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
