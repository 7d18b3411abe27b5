package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strconv"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// defaultFixture is docs/events/initial_purchase_paid_eur.json: a paid Play
// Store purchase with subscriber attributes, 1.7 KB like a real webhook.
//
//go:embed event.json
var defaultFixture []byte

// idWidth is the width of every generated event id: fixed, so every body of
// a run has the same size.
const idWidth = 32

// fixture is a webhook body split around its event id, so each request can
// carry a unique id without re-encoding the JSON.
type fixture struct {
	before, after []byte // the body up to the id's opening quote, and from its closing quote
	typ           string // event.type
}

func loadFixture(path string) (*fixture, error) {
	body := defaultFixture
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("fixture: %w", err)
		}
		body = b
	}
	e, err := revenuecat.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	quoted := []byte(strconv.Quote(e.ID))
	if bytes.Count(body, quoted) != 1 {
		return nil, fmt.Errorf("fixture: event id %s must appear exactly once in the body", quoted)
	}
	i := bytes.Index(body, quoted)
	return &fixture{before: body[:i+1], after: body[i+len(quoted)-1:], typ: e.Type}, nil
}

func (f *fixture) size() int { return len(f.before) + idWidth + len(f.after) }

// appendID appends the event id of request n of a run tagged tag: unique
// across runs (tag) and requests (n), always idWidth bytes.
func appendID(dst []byte, tag string, n uint64) []byte {
	dst = append(dst, tag...)
	dst = append(dst, '-')
	var digits [20]byte
	s := strconv.AppendUint(digits[:0], n, 10)
	for i := len(tag) + 1 + len(s); i < idWidth; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendBody appends the fixture with the id of request n.
func (f *fixture) appendBody(dst []byte, tag string, n uint64) []byte {
	dst = append(dst, f.before...)
	dst = appendID(dst, tag, n)
	return append(dst, f.after...)
}
