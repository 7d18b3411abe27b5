// Package pgtest gives each test its own PostgreSQL database on the server
// named by RCROUTER_TEST_POSTGRES_DSN (default the local development server,
// DefaultDSN). The database is created for the test and dropped when it ends.
//
// When no server answers, the test is skipped on a developer's machine and
// fails under CI=true: CI must never pass by skipping the PostgreSQL store.
//
// It imports "testing"; only test code may import it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultDSN is the server every development and CI machine runs.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// EnvDSN names the variable that points the tests at another server.
const EnvDSN = "RCROUTER_TEST_POSTGRES_DSN"

// ServerDSN returns the DSN of the test server's maintenance database.
func ServerDSN() string {
	if v := os.Getenv(EnvDSN); v != "" {
		return v
	}
	return DefaultDSN
}

// reach caches the first reachability check, so a missing server costs one
// connection timeout per test binary, not one per test.
var reach struct {
	once sync.Once
	err  error
}

func reachable(ctx context.Context) error {
	reach.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerDSN())
		if err != nil {
			reach.err = err
			return
		}
		reach.err = c.Ping(ctx)
		_ = c.Close(ctx)
	})
	return reach.err
}

// Require skips (fails under CI=true) the test when the server does not answer.
func Require(tb testing.TB) {
	tb.Helper()
	if err := reachable(context.Background()); err != nil {
		msg := fmt.Sprintf("PostgreSQL test server %s unreachable (set %s): %v", where(ServerDSN()), EnvDSN, err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

// NewDatabase creates an empty database for tb, dropped (with any session
// still connected to it) when tb ends, and returns its DSN.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rcrouter_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerDSN())
	if err != nil {
		tb.Fatalf("connect to the PostgreSQL test server: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerDSN())
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	dsn, err := WithDatabase(ServerDSN(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// WithDatabase returns dsn (URL or key=value form) pointed at database name.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}

// where names a DSN's server without its password.
func where(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}
