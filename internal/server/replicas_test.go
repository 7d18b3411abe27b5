package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
)

type replicaList struct {
	rs  []store.Replica
	err error
}

func (l replicaList) Replicas(context.Context) ([]store.Replica, error) { return l.rs, l.err }

func TestListReplicas(t *testing.T) {
	seen := time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)
	one := store.Replica{Name: "rc-1", Version: "1.0.0", StartedAt: testNow, LastSeenAt: seen, ConfigSHA256: "ab12", Alive: true}
	for _, tt := range []struct {
		name     string
		replicas ReplicaLister
		want     int
		body     string
	}{
		{"one replica", replicaList{rs: []store.Replica{one}}, 200,
			`[{"name":"rc-1","version":"1.0.0","started_at":"2026-11-27T12:00:00Z","last_seen_at":"2026-11-27T12:00:05Z","config_sha256":"ab12","alive":true}]`},
		{"none yet is an empty list", replicaList{}, 200, `[]`},
		{"store down", replicaList{err: errors.New("replicas: connection refused")}, 500, `{"error":"replicas: connection refused"}`},
		{"not known", nil, 404, `{"error":"replicas are not known to this server"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{WebhookPath: testPath, Settings: Settings{AdminToken: "admin-token-for-tests"},
				Backend: &fakeBackend{}, Replicas: tt.replicas, Clock: clock.NewFake(testNow)})
			req := httptest.NewRequest("GET", "/api/v1/replicas", nil)
			req.Header.Set("Authorization", "Bearer admin-token-for-tests")
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want || rec.Body.String() != tt.body {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.want, tt.body)
			}
			req = httptest.NewRequest("GET", "/api/v1/replicas", nil)
			rec = httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("without the admin token: %d, want 401", rec.Code)
			}
		})
	}
}
