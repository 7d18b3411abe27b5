package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
)

// runProc runs rcrouter as a child process to its end: its exit code, stdout
// and stderr.
func runProc(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "RCROUTER_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestRoutesDiffProcess: the exit codes of `rcrouter routes diff` as a CI
// check sees them, against a store holding known events.
func TestRoutesDiffProcess(t *testing.T) {
	dir := t.TempDir()
	cur := writeConfig(t, dir, "127.0.0.1:0", "http://127.0.0.1:9/hook")
	st, err := sqlite.Open(filepath.Join(dir, "data", "rcrouter.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, e := range []struct {
		id  string
		ago time.Duration
	}{{"old", 200 * time.Hour}, {"e1", 2 * time.Hour}, {"e2", time.Hour}} {
		if _, err := st.Ingest(t.Context(), store.NewEvent{ID: e.id, Type: "RENEWAL", ReceivedAt: now.Add(-e.ago), Body: eventBody(e.id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	curYAML, err := os.ReadFile(cur)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := write("same.yaml", string(curYAML))
	narrowed := write("narrowed.yaml", strings.Replace(string(curYAML), "    to: [archive, sink]", "    to: [archive]\n  - name: sandbox-sink\n    match: {environment: SANDBOX}\n    to: [sink]", 1))
	noStore := write("nostore.yaml", strings.Replace(string(curYAML), "path: data/rcrouter.db", "path: elsewhere/rc.db", 1))
	invalid := write("invalid.yaml", strings.Replace(string(curYAML), "to: [archive, sink]", "to: [archive, slak]", 1))

	tests := []struct {
		name   string
		args   []string
		want   int
		stdout []string // each must appear
		stderr string
	}{
		{"no change", []string{"routes", "diff", "--config", cur, "--new", same}, exitOK,
			[]string{"2 events received in the last 168h routed", "no change"}, ""},
		{"changed", []string{"routes", "diff", "--config", cur, "--new", narrowed}, exitFailure,
			[]string{"DESTINATION", "sink", "+0", "-2", "- e2 e1"}, ""},
		{"longer window", []string{"routes", "diff", "--config", cur, "--new", narrowed, "--since", "300h"}, exitFailure,
			[]string{"3 events received in the last 300h routed", "-3", "- e2 e1 old"}, ""},
		{"invalid new config", []string{"routes", "diff", "--config", cur, "--new", invalid}, exitUsage, nil, `unknown destination "slak"`},
		{"invalid current config", []string{"routes", "diff", "--config", invalid, "--new", cur}, exitUsage, nil, `unknown destination "slak"`},
		{"missing --new", []string{"routes", "diff", "--config", cur}, exitUsage, nil, "usage: rcrouter routes diff"},
		{"no store", []string{"routes", "diff", "--config", noStore, "--new", same}, exitFailure, nil, "no stored events to replay"},
		{"window in minutes", []string{"routes", "diff", "--config", cur, "--new", same, "--since", "90m"}, exitOK,
			[]string{"1 event received in the last 1h30m routed"}, ""},
		{"bad --since", []string{"routes", "diff", "--config", cur, "--new", same, "--since", "soon"}, exitUsage, nil, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runProc(t, tt.args...)
			if code != tt.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, out, errs)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errs)
			}
			if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err == nil {
				t.Error("routes diff created a store")
			}
			if strings.Contains(errs, "\r") {
				t.Errorf("progress drawn on a stderr that is not a terminal: %q", errs)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, errs := runProc(t, "routes", "diff", "--config", cur, "--new", narrowed, "--json")
		if code != exitFailure {
			t.Fatalf("exit %d; stderr: %s", code, errs)
		}
		var got struct {
			Events int `json:"events"`
			Diff   map[string]struct {
				Gained        int      `json:"gained"`
				Lost          int      `json:"lost"`
				SamplesGained []string `json:"samples_gained"`
				SamplesLost   []string `json:"samples_lost"`
			} `json:"diff"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, out)
		}
		d, ok := got.Diff["sink"]
		if got.Events != 2 || len(got.Diff) != 1 || !ok || d.Gained != 0 || d.Lost != 2 ||
			strings.Join(d.SamplesLost, ",") != "e2,e1" || d.SamplesGained == nil {
			t.Fatalf("JSON = %s", out)
		}
	})
}
