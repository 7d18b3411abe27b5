package sqlite

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// commitCount reports the transactions the writer has committed.
func (s *Store) commitCount() int64 { return s.commits.Load() }

// hold occupies the writer with a request that waits, so the requests queued
// meanwhile meet in the next batch. release lets it finish; a test that ends
// without calling it releases at cleanup, before the store is closed.
func (s *Store) hold(t *testing.T) (release func()) {
	t.Helper()
	started, rel, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.do(context.Background(), func(w *writer) error {
			close(started)
			<-rel
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(rel)
			if err := <-done; err != nil {
				t.Errorf("held request: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// errPoison is what poison's op fails with: a storage-level failure.
var errPoison = errors.New("poisoned write")

// poison queues a write whose op fails as a storage error would, aborting
// its batch.
func (s *Store) poison(ctx context.Context) error {
	return s.do(ctx, func(w *writer) error { return errPoison })
}

// setQueryOnly makes the writing connection refuse writes, as SQLite does
// for a file it can no longer write (SQLITE_READONLY).
func (s *Store) setQueryOnly(on bool) error {
	q := "PRAGMA query_only = 0"
	if on {
		q = "PRAGMA query_only = 1"
	}
	_, err := s.w.conn.ExecContext(context.Background(), q)
	return err
}

// writerPragma reads a PRAGMA on the writing connection.
func (s *Store) writerPragma(name string) (string, error) {
	var v string
	err := s.w.conn.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v)
	return v, err
}
