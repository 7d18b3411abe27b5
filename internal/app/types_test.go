package app

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/delivery"
)

// TestTypesAreTheRegistry: every listed type has a block name, a config and
// a constructor, and names are unique (config looks them up by name).
func TestTypesAreTheRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range Types() {
		if ty.Name == "" || ty.Config == nil || ty.New == nil || seen[ty.Name] {
			t.Errorf("type %+v: missing a part or a duplicate name", ty.Name)
		}
		seen[ty.Name] = true
		if ty.Config() == ty.Config() {
			t.Errorf("type %s: Config returns a shared block", ty.Name)
		}
	}
	if got := strings.Join(Types().Names(), ", "); got != "segment, amplitude, mixpanel, posthog, slack, discord, teams, webhook, file" {
		t.Errorf("names = %s", got)
	}
}

// TestBuildErrorNamesDestinationOnce: an adapter that cannot be built is
// reported as "destination <name>: <type>: …", the name said once.
func TestBuildErrorNamesDestinationOnce(t *testing.T) {
	dir := t.TempDir()
	taken := filepath.Join(dir, "taken")
	if err := os.Mkdir(taken, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	cfg := configHead() + "destinations:\n  archive:\n    file: {path: " + taken + "}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := New(Options{ConfigPath: path, Listener: l, Logger: slog.New(slog.DiscardHandler),
		Getenv: func(string) (string, bool) { return "", false }})
	if err == nil {
		a.Close()
		t.Fatal("New succeeded with a directory as the archive file")
	}
	want := "destination archive: file: open " + taken + ": is a directory"
	if !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "archive") != 1 {
		t.Errorf("error = %q, want it to contain %q and name the destination once", err, want)
	}
}

// TestTargetsCarryCapabilities: what an adapter declares reaches the
// scheduler unchanged (Segment: its batch size and its longest send), and an
// adapter that declares nothing asks for nothing.
func TestTargetsCarryCapabilities(t *testing.T) {
	h := startApp(t, "destinations:\n  seg:\n    segment: {write_key: k, endpoint: \"http://127.0.0.1:9\", batch_size: 20}\n"+
		"  archive:\n    file: {path: data/archive.jsonl}\n")
	caps := map[string]delivery.Capabilities{}
	for _, tg := range h.app.cur.Load().targets {
		caps[tg.Name] = tg.Caps
	}
	if c := caps["seg"]; c.Batch != 20 || c.MaxWait < 10*time.Second {
		t.Errorf("segment capabilities = %+v, want batch 20 and a MaxWait of the library's ten tries", c)
	}
	if c := caps["archive"]; c != (delivery.Capabilities{}) {
		t.Errorf("file capabilities = %+v, want none", c)
	}
}
