package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// storeSpec is the store a run of rcrouter uses: SQLite in its temporary
// directory, or a fresh PostgreSQL database served to replicas children.
type storeSpec struct {
	driver   string // sqlite | postgres
	replicas int
}

func (s storeSpec) String() string {
	if s.driver != "postgres" {
		return "sqlite"
	}
	return fmt.Sprintf("pg×%d", s.replicas)
}

// pgDB is a database rcbench created for one run; drop removes it.
type pgDB struct {
	name  string
	dsn   string // the run's database, for the rcrouter config
	admin string // the server's maintenance database, to drop it
}

// createDB creates a fresh database on the server of adminDSN (its own
// name, so runs never see each other's rows) and returns it.
func createDB(ctx context.Context, adminDSN string) (*pgDB, error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("-pg-dsn: want a postgres:// URL")
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return nil, fmt.Errorf("-pg-dsn: the server must be on loopback, not %q", h)
	}
	db := &pgDB{name: "rcbench_" + newTag(), admin: adminDSN}
	run := *u
	run.Path = "/" + db.name
	db.dsn = run.String()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, adminDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(cctx, "CREATE DATABASE "+db.name); err != nil {
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	return db, nil
}

// drop removes the database, closing what still holds it.
func (db *pgDB) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)")
	return err
}

// pgCPU is the CPU time used so far by the PostgreSQL server processes that
// work for database db: its client backends, and every process that is no
// client backend (postmaster, WAL writer, checkpointer, background writer,
// autovacuum), which serve this run's commits but on a shared machine
// also other databases' (the figure is then an upper bound). Client
// backends of other databases are left out. Keyed by pid and start time,
// so the window's share is the difference of two readings (pgCPUSince).
func pgCPU(db string) map[[2]int64]time.Duration {
	out := map[[2]int64]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		line := string(cmd)
		client := strings.Contains(line, "127.0.0.1(") || strings.Contains(line, "::1(") || strings.Contains(line, "[local]")
		if client && !strings.Contains(line, " "+db+" ") {
			continue
		}
		pid, _ := strconv.ParseInt(filepath.Base(d), 10, 64)
		cpu, start, ok := statCPU(d + "/stat")
		if ok {
			out[[2]int64{pid, start}] = cpu
		}
	}
	return out
}

// pgCPUSince is the CPU the processes of now used since the reading before
// (all of it for processes that started since). A backend that exited in
// between is missing; rcrouter's pools keep theirs for the whole run.
func pgCPUSince(before, now map[[2]int64]time.Duration) time.Duration {
	var sum time.Duration
	for k, v := range now {
		sum += v - before[k]
	}
	return sum
}

// statCPU reads utime+stime and the start time (fields 14, 15 and 22) of a
// /proc/<pid>/stat file; ticks are 1/100 s (USER_HZ).
func statCPU(path string) (cpu time.Duration, start int64, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	// The command name (field 2) may hold spaces; fields restart after ')'.
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 20 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	start, _ = strconv.ParseInt(f[19], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, start, true
}
