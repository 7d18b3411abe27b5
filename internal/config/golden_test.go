package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// TestInvalidGolden loads a file with many mistakes on different lines and
// compares the whole report with testdata/invalid.golden.
func TestInvalidGolden(t *testing.T) {
	path := filepath.Join("testdata", "invalid.yaml")
	_, err := Load(path, env(map[string]string{"RCROUTER_ADMIN_TOKEN": "admin-token-for-tests"}), testTypes())
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load = %v, want *Errors", err)
	}
	if len(*es) < 6 {
		t.Errorf("%d problems, want every one of the file's mistakes", len(*es))
	}
	for i := 1; i < len(*es); i++ {
		if (*es)[i-1].Line > (*es)[i].Line {
			t.Errorf("problems not sorted by line: %d before %d", (*es)[i-1].Line, (*es)[i].Line)
		}
	}
	// The golden file names the file with "/" on every OS.
	testutil.Golden(t, filepath.Join("testdata", "invalid.golden"), []byte(strings.ReplaceAll(err.Error(), path, "testdata/invalid.yaml")+"\n"), *update)
}
