package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/config"
)

// TestRcrouterConfig checks that the generated config loads, on either store.
func TestRcrouterConfig(t *testing.T) {
	tests := []struct {
		name, dsn, driver string
	}{
		{name: "sqlite", driver: "sqlite"},
		{name: "postgres", dsn: "postgres://postgres@127.0.0.1:5432/rcbench_x?sslmode=disable", driver: "postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, err := rcrouterConfig(dir, tt.dsn, 2, []string{"sink-1"}, []string{webhookBlock("http://127.0.0.1:1/hook")})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, func(string) (string, bool) { return "", false }, app.Types())
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Storage.Driver != tt.driver || cfg.Storage.DSN.Value() != tt.dsn {
				t.Errorf("storage = %q %q, want %q %q", cfg.Storage.Driver, cfg.Storage.DSN.Value(), tt.driver, tt.dsn)
			}
		})
	}
}

// TestStatCPU reads this process's own /proc entry and a written one.
func TestStatCPU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	// Fields after the command name: utime 14 = 250 ticks, stime 15 = 50, starttime 22 = 777.
	line := "42 (post gres) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 777 0 0\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cpu, start, ok := statCPU(path)
	if !ok || cpu != 3*time.Second || start != 777 {
		t.Errorf("statCPU = %s %d %v, want 3s 777 true", cpu, start, ok)
	}
	if _, _, ok := statCPU("/proc/self/stat"); !ok {
		t.Error("statCPU(/proc/self/stat) failed")
	}
}

func TestPgCPUSince(t *testing.T) {
	before := map[[2]int64]time.Duration{{1, 10}: time.Second, {2, 20}: 2 * time.Second}
	now := map[[2]int64]time.Duration{{1, 10}: 3 * time.Second, {3, 30}: 500 * time.Millisecond}
	// pid 1 used 2s, pid 3 started in the window (all 0.5s), pid 2 exited (missing).
	if got := pgCPUSince(before, now); got != 2500*time.Millisecond {
		t.Errorf("pgCPUSince = %s, want 2.5s", got)
	}
}
