package pgtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnreachableServer runs this test binary again against a port where
// nothing listens: under CI=true the test fails, elsewhere it skips.
func TestUnreachableServer(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		NewDatabase(t)
		t.Log("reached an unreachable server")
		return
	}
	tests := []struct {
		name    string
		ci      string
		wantErr bool
		want    string
	}{
		{"CI fails", "true", true, "--- FAIL: TestUnreachableServer"},
		{"a developer's machine skips", "", false, "--- SKIP: TestUnreachableServer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableServer$", "-test.v")
			cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "CI="+tt.ci,
				EnvDSN+"=postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantErr || !strings.Contains(string(out), tt.want) {
				t.Fatalf("child: err = %v, output:\n%s\nwant %q", err, out, tt.want)
			}
		})
	}
}
