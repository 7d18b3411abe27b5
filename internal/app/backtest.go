package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/backtest"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/router"
)

// Backtest runs the events stored in cfg's store through current and
// proposed (rcrouter routes diff). It opens the store without migrating
// it, so it changes nothing in the database a running process uses; a
// store whose schema is not current is an error that says to migrate.
func Backtest(ctx context.Context, cfg *config.Config, current, proposed *router.Routes, opts backtest.Options) (backtest.Result, error) {
	// Opening creates a missing SQLite file; a read-only tool must not.
	if cfg.Storage.Driver == "sqlite" {
		if _, err := os.Stat(cfg.Storage.Path); err != nil {
			return backtest.Result{}, fmt.Errorf("no stored events to replay: %w", err)
		}
	}
	st, err := openStore(cfg, slog.New(slog.DiscardHandler), clock.Real(), storeMode{noMigrate: true, replica: replicaName(cfg)})
	if err != nil {
		return backtest.Result{}, err
	}
	res, err := backtest.Run(ctx, st, current, proposed, opts)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return res, err
}

// previewWindow is how far back a reload dry run replays (DESIGN §6).
const previewWindow = 168 * time.Hour

// PreviewReload implements server.Backend: the config file as it is now,
// validated and backtested against the running routes, applied nowhere.
func (a *App) PreviewReload(ctx context.Context) (server.ReloadPreview, error) {
	cfg, err := config.Load(a.opts.ConfigPath, a.opts.Getenv, Types())
	if err != nil {
		return server.ReloadPreview{Errors: problems(err)}, nil
	}
	proposed, err := router.Compile(cfg.Routes)
	if err != nil {
		return server.ReloadPreview{Errors: problems(err)}, nil
	}
	res, err := backtest.Run(ctx, a.store, a.cur.Load().routes, proposed,
		backtest.Options{Since: a.opts.Clock.Now().Add(-previewWindow)})
	if err != nil {
		return server.ReloadPreview{}, err
	}
	return server.ReloadPreview{Valid: true, Errors: []string{}, Diff: res.Diff, Events: res.Events}, nil
}

// problems lists the problems of a refused config one per entry: each of a
// *config.Errors, else each line of the error.
func problems(err error) []string {
	var ce *config.Errors
	if errors.As(err, &ce) {
		out := make([]string, len(*ce))
		for i, e := range *ce {
			out[i] = e.Error()
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}
