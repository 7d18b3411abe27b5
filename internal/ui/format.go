package ui

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Times are shown in UTC everywhere (server pages and live rows alike), so
// that two operators in different places read the same value.
const timeLayout = "2006-01-02 15:04:05"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(timeLayout)
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// msTime formats RevenueCat's millisecond timestamps.
func msTime(ms *int64) string {
	if ms == nil {
		return ""
	}
	return formatTime(time.UnixMilli(*ms))
}

func formatDuration(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + " ms"
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) + " s"
}

// prettyJSON indents a JSON document for reading; anything else (a body cut
// by the truncation marker, plain text) is shown as it is.
func prettyJSON(v any) string {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case json.RawMessage:
		b = x
	default:
		return ""
	}
	var out bytes.Buffer
	if json.Valid(b) && json.Indent(&out, b, "", "  ") == nil {
		return out.String()
	}
	return string(b)
}

func pathEscape(s string) string { return url.PathEscape(s) }

// retryable says whether a dispatch row gets a Retry button: its attempt
// failed, and the delivery is either waiting for a retry or dead.
func retryable(status string) bool {
	return status == string(store.Dead) || status == string(store.Retrying)
}

// statusClass maps dispatch and delivery states to a CSS class; anything
// unexpected gets a neutral one rather than a class named by the data.
func statusClass(s string) string {
	switch store.State(s) {
	case store.Delivered, store.Retrying, store.Dead, store.Skipped, store.Pending, store.Running:
		return s
	}
	return "other"
}

func deliveryStateClass(s store.State) string { return statusClass(string(s)) }

// stateClass maps destination states (DESIGN §6) to a CSS class.
func stateClass(s string) string {
	switch s {
	case "healthy", "retrying", "circuit_open", "paused":
		return s
	}
	return "other"
}

func stateLabel(s string) string {
	if s == "circuit_open" {
		return "circuit open"
	}
	return s
}

func floatString(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// shortSHA is the first 12 hex digits of a config hash, enough to tell
// configs apart at a glance; the whole hash is in the cell's title.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "—"
	}
	return s
}
