package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rcrouter/rcrouter/internal/backtest"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/router"
)

// Backtest runs the events stored in cfg's store through current and
// proposed (rcrouter routes diff). It opens the store without migrating
// it, so it changes nothing in the database a running process uses; a
// store whose schema is not current is an error that says to migrate.
func Backtest(ctx context.Context, cfg *config.Config, current, proposed *router.Routes, opts backtest.Options) (backtest.Result, error) {
	st, err := openStore(cfg, slog.New(slog.DiscardHandler), clock.Real(), storeMode{noMigrate: true})
	if err != nil {
		return backtest.Result{}, err
	}
	res, err := backtest.Run(ctx, st, current, proposed, opts)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return res, err
}
