package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// TestHousekeepingMovesWhenItsReplicaStops runs two replicas in this
// process on one database: one of them holds the housekeeping role, both
// list each other, and when the holder stops the other takes the role over.
func TestHousekeepingMovesWhenItsReplicaStops(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`server:
  replica: "${REPLICA}"
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  driver: postgres
  dsn: "${DSN}"
destinations:
  archive:
    file: {path: data/events.jsonl}
routes:
  - name: all
    to: [archive]
`, hAuth, hAdmin)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(replica string) func(*Options) {
		return func(o *Options) {
			o.Getenv = func(k string) (string, bool) {
				switch k {
				case "REPLICA":
					return replica, true
				case "DSN":
					return dsn, true
				}
				return "", false
			}
		}
	}
	hs := map[string]*harness{"rc-a": startAppAt(t, path, env("rc-a")), "rc-b": startAppAt(t, path, env("rc-b"))}

	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	holder := func() string {
		var h string
		err := conn.QueryRow(context.Background(), `SELECT holder FROM leaders WHERE role = 'housekeeping'`).Scan(&h)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return h
	}
	if !testutil.Poll(10*time.Second, func() bool { return holder() != "" }) {
		t.Fatal("no replica took the housekeeping role")
	}
	first := holder()
	other := map[string]string{"rc-a": "rc-b", "rc-b": "rc-a"}[first]
	if other == "" {
		t.Fatalf("housekeeping held by %q, not one of the replicas", first)
	}

	var rs []store.Replica
	testutil.Poll(10*time.Second, func() bool { // each beats once at start
		rs, err = hs[other].app.Replicas(context.Background())
		return err == nil && len(rs) == 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || !rs[0].Alive || !rs[1].Alive || rs[0].ConfigSHA256 != rs[1].ConfigSHA256 || rs[0].ConfigSHA256 == "" {
		t.Fatalf("replicas %+v, want rc-a and rc-b alive with one config", rs)
	}

	// The holder stops and hands the role over; the other takes it at its
	// next beat, not after the holder's term runs out.
	hs[first].stop()
	if !testutil.Poll(2*heartbeatEvery, func() bool { return holder() == other }) {
		t.Fatalf("housekeeping held by %q after %s stopped, want %s", holder(), first, other)
	}
	if logs := hs[first].logs.String(); !strings.Contains(logs, "housekeeping handed over") {
		t.Errorf("the stopping replica did not say it handed housekeeping over:\n%s", logs)
	}
}
