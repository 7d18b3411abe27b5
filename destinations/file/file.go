// Package file appends one JSON line per delivered event to a local file: an
// audit archive and a destination that needs no account for a demo.
//
// Each line is
//
//	{"delivery_key":"…","destination":"…","written_at":"<RFC3339Nano>","event":{RevenueCat's envelope}}
//
// with the envelope compacted onto one line. Every line is fsynced before Send
// reports it delivered, so an acknowledged line survives a power loss; the
// cost is one fsync per event (milliseconds on most disks), which is fine at
// RevenueCat's volumes and the price of an archive that can be trusted.
//
// Delivery is at least once: a delivery repeated after a crash or a replay
// appends its line again. Consumers dedupe by delivery_key.
package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// Destination is one archive file. Sends are serialized: each line is one
// write under a mutex, so lines never interleave.
type Destination struct {
	name string
	path string // absolute
	url  string // file://<path>, for the dispatch log
	now  func() time.Time
	max  int // bytes of the line kept in the dispatch record

	mu sync.Mutex
	f  *os.File // nil once closed
}

var _ destinations.Destination = (*Destination)(nil)

// New creates missing parent directories and opens (or creates) the file for
// appending. Options.Now stamps written_at; Timeout, Logger and Base are not
// used (there is no HTTP). Errors do not name the destination: the caller does.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	opts = opts.WithDefaults()
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("file: creating directory: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	return &Destination{name: name, path: abs, url: "file://" + filepath.ToSlash(abs), now: opts.Now, max: opts.MaxBody, f: f}, nil
}

// line is one archived delivery.
type line struct {
	DeliveryKey string          `json:"delivery_key"`
	Destination string          `json:"destination"`
	WrittenAt   string          `json:"written_at"`
	Event       json.RawMessage `json:"event"`
}

// Send appends one line and fsyncs it.
func (d *Destination) Send(_ context.Context, dl destinations.Delivery) destinations.Result {
	if dl.Event == nil || !json.Valid(dl.Event.Raw) {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "the event has no valid raw JSON to archive"}
	}
	// The write is not interruptible, and it is short: ctx is not consulted.
	d.mu.Lock()
	defer d.mu.Unlock()

	start, t0 := d.now(), time.Now()
	b, err := encodeLine(line{
		DeliveryKey: dl.Key,
		Destination: d.name,
		WrittenAt:   start.UTC().Format(time.RFC3339Nano),
		Event:       dl.Event.Raw,
	})
	if err != nil {
		return destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: fmt.Sprintf("encoding the line: %v", err)}
	}
	x := destinations.Exchange{
		Started: start,
		Request: destinations.Request{
			Method:  "APPEND",
			URL:     d.url,
			Headers: map[string]string{},
			Body:    destinations.Truncate(string(bytes.TrimSuffix(b, []byte("\n"))), d.max),
		},
	}
	err = d.append(b)
	x.Duration = time.Since(t0)
	if err != nil {
		x.Response.Error = err.Error()
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
			Message: err.Error(), Exchanges: []destinations.Exchange{x}}
	}
	return destinations.Result{Outcome: destinations.Delivered, Exchanges: []destinations.Exchange{x}}
}

// append writes b in one call and fsyncs. d.mu is held.
func (d *Destination) append(b []byte) error {
	if d.f == nil {
		return errors.New("closed")
	}
	var size int64 = -1
	if fi, err := d.f.Stat(); err == nil {
		size = fi.Size()
	}
	if _, err := d.f.Write(b); err != nil {
		// A half-written line would glue itself to the next one: cut it off
		// (best effort; the error is what gets reported).
		if size >= 0 {
			_ = d.f.Truncate(size)
		}
		return fmt.Errorf("writing: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("syncing: %w", err)
	}
	return nil
}

// encodeLine is the JSON of l with a newline; the raw event is compacted and
// keeps <, > and & as they are (the archive is not HTML).
func encodeLine(l line) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Close closes the file; later Sends fail with Retry.
func (d *Destination) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("file: closing: %w", err)
	}
	return nil
}
