package config

import (
	"flag"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

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
