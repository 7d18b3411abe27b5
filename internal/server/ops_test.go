package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/backtest"
)

// previewBackend answers dry runs and counts real reloads.
type previewBackend struct {
	fakeBackend
	preview ReloadPreview
	reloads int
}

func (b *previewBackend) Reload(context.Context) error { b.reloads++; return nil }
func (b *previewBackend) PreviewReload(context.Context) (ReloadPreview, error) {
	return b.preview, nil
}

func adminDo(t *testing.T, s *Server, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestReloadDryRun: {"dry_run":true} answers the preview as DESIGN §6 names
// it and applies nothing; without it (or with false) the reload happens.
func TestReloadDryRun(t *testing.T) {
	changed := ReloadPreview{Valid: true, Events: 3, Diff: map[string]*backtest.Change{
		"slack": {Lost: 2, SamplesGained: []string{}, SamplesLost: []string{"e2", "e1"}},
	}}
	tests := []struct {
		name        string
		preview     ReloadPreview
		body        string
		wantCode    int
		wantBody    string
		wantReloads int
	}{
		{"dry run with a diff", changed, `{"dry_run":true}`, 200,
			`{"valid":true,"errors":[],"diff":{"slack":{"gained":0,"lost":2,"samples_gained":[],"samples_lost":["e2","e1"]}},"events":3}`, 0},
		{"dry run of an invalid file", ReloadPreview{Errors: []string{`config.yaml:9: routes[0].to[0]: unknown destination "slak"`}}, `{"dry_run":true}`, 200,
			`{"valid":false,"errors":["config.yaml:9: routes[0].to[0]: unknown destination \"slak\""],"diff":{},"events":0}`, 0},
		{"no body reloads", changed, ``, 200, `{"status":"reloaded"}`, 1},
		{"dry_run false reloads", changed, `{"dry_run":false}`, 200, `{"status":"reloaded"}`, 1},
		{"unknown field", changed, `{"dryrun":true}`, 400, `{"error":"invalid reload request: json: unknown field \"dryrun\""}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &previewBackend{preview: tt.preview}
			rec := adminDo(t, newTestServer(t, b, nil), "POST", "/api/v1/reload", tt.body)
			if rec.Code != tt.wantCode || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("answer %d %s\nwant %d %s", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
			if b.reloads != tt.wantReloads {
				t.Errorf("%d reloads, want %d", b.reloads, tt.wantReloads)
			}
		})
	}
}
