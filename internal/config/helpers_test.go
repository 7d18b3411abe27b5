package config

import (
	"flag"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/destinations/segment"
	"github.com/rcrouter/rcrouter/destinations/slack"
	"github.com/rcrouter/rcrouter/destinations/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testTypes are the destination types these tests load configs with: the
// app's list (internal/app.Types), which this package cannot import.
func testTypes() destinations.Types {
	return destinations.Types{segment.Type(), slack.Type(), webhook.Type(), file.Type()}
}

// env is a getenv over a fixed map, so tests never read the real environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// required completes a test document with the two sections every config
// needs; it goes last so the case's own lines keep their numbers.
const required = "\ninbound: {authorization: Bearer-x}\nadmin: {token: admin-token-for-tests}\n"

// problemLines returns the lines of a *Errors, or fails the test when err
// is something else.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	es, ok := err.(*Errors)
	if !ok {
		t.Fatalf("error is %T, want *config.Errors: %v", err, err)
	}
	return strings.Split(es.Error(), "\n")
}
