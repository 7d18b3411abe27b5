package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EncodeCursor returns the keyset cursor of a list item: its created_at and
// id, opaque to clients (base64url of "<unix ms>.<id>"). Both stores issue
// and read the same cursors.
func EncodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdAt.UnixMilli(), 10) + "." + id))
}

// DecodeCursor reads a cursor of EncodeCursor; anything else is ErrBadCursor.
func DecodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w %q", ErrBadCursor, c)
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || id == "" {
		return time.Time{}, "", fmt.Errorf("%w %q", ErrBadCursor, c)
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w %q", ErrBadCursor, c)
	}
	return time.UnixMilli(n).UTC(), id, nil
}
