package postgres

import (
	"testing"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
	"github.com/rcrouter/rcrouter/internal/store/storetest"
)

// openDB opens a migrated store on a new database, closed when t ends.
func openDB(t testing.TB, dsn string, replica string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{DSN: dsn, Replica: replica, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func openNew(t *testing.T) *Store {
	t.Helper()
	return openDB(t, pgtest.NewDatabase(t), "test-replica")
}

func TestConformance(t *testing.T) {
	pgtest.Require(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openNew(t) })
}
