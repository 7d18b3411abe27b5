package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/config"
)

// Migrate opens the store the config at path names, applies its pending
// schema migrations and returns the version reached (rcrouter migrate). It
// takes over nothing: leases stay with whoever holds them. A config that
// does not load is a *config.Errors.
func Migrate(ctx context.Context, path string, getenv func(string) (string, bool), log *slog.Logger) (int, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.Load(path, getenv, Types())
	if err != nil {
		return 0, err
	}
	st, err := openStore(cfg, log, clock.Real(), storeMode{replica: replicaName(cfg)})
	if err != nil {
		return 0, err
	}
	v, err := st.Migrate(ctx)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("migrate %s store: %w", cfg.Storage.Driver, err)
	}
	return v, nil
}
