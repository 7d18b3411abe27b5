package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/store"
)

// TestMigrateCommand: migrate creates or upgrades the store and prints the
// version, again and again; serve --no-migrate refuses a store that is not
// migrated.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "127.0.0.1:0", "http://127.0.0.1:9/hook")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("storage: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--no-migrate", "--config", cfg}, &out, &errb); code != exitFailure {
		t.Fatalf("serve --no-migrate on a new store: exit %d, want %d; stderr: %s", code, exitFailure, errb.String())
	}
	if !strings.Contains(errb.String(), "run rcrouter migrate") {
		t.Fatalf("serve --no-migrate does not say what to do: %s", errb.String())
	}
	want := fmt.Sprintf("schema version %d\n", store.SchemaVersion)
	for i := 0; i < 2; i++ {
		out.Reset()
		errb.Reset()
		if code := run([]string{"migrate", "--config", cfg}, &out, &errb); code != exitOK || out.String() != want {
			t.Fatalf("migrate #%d: exit %d, stdout %q; want 0, %q; stderr: %s", i+1, code, out.String(), want, errb.String())
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"bad config", []string{"migrate", "--config", bad}, exitUsage},
		{"stray argument", []string{"migrate", "--config", cfg, "extra"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(tt.args, &out, &errb); code != tt.want {
				t.Fatalf("exit %d, want %d", code, tt.want)
			}
		})
	}
}
