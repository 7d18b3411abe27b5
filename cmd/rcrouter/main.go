// Command rcrouter receives RevenueCat webhooks, stores them durably, routes
// them through YAML rules and delivers them to Segment, Slack, HTTP and file
// destinations. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/ui"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes (DESIGN §5).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: rcrouter <command> [flags]

commands:
  serve    --config PATH                     run the service (default command)
  validate --config PATH                     check a config; print every error
  routes   --config PATH EVENT.json          explain how one event is routed
  send     --url URL [--auth VALUE] EVENT.json   post an event to a webhook endpoint
  migrate  --config PATH                     apply pending schema migrations, print the version
  version                                    print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "validate":
		return validate(args, stdout, stderr)
	case "routes":
		return routes(args, stdout, stderr)
	case "send":
		return send(args, stdout, stderr)
	case "migrate":
		return migrate(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "rcrouter", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "rcrouter: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// defaultConfig is used when --config is not given.
func defaultConfig() string {
	if p := os.Getenv("RCROUTER_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func serve(args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := fs.String("config", defaultConfig(), "config file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or text")
	drain := fs.Duration("drain-delay", 0, "on SIGTERM, fail /readyz this long before closing the listener")
	shutdown := fs.Duration("shutdown-timeout", 25*time.Second, "how long in-flight requests and deliveries may take to finish on SIGTERM")
	noMigrate := fs.Bool("no-migrate", false, "refuse to start on a store whose schema is not current instead of migrating it")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter:", err)
		return exitUsage
	}
	a, err := app.New(app.Options{ConfigPath: *path, Logger: log, Version: version, UI: ui.Handler,
		DrainDelay: *drain, ShutdownTimeout: *shutdown + *drain, NoMigrate: *noMigrate})
	if err != nil {
		var cfgErr *config.Errors
		if errors.As(err, &cfgErr) {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		log.Error("cannot start", "err", err)
		return exitFailure
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.ReloadFrom("sighup")
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with error", "err", err)
		return exitFailure
	}
	return exitOK
}

// migrate applies pending schema migrations and prints the version reached:
// exit 0, 1 when the store cannot be opened or migrated, 2 on a bad config.
func migrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("migrate", stderr)
	path := fs.String("config", defaultConfig(), "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rcrouter migrate: unexpected arguments", fs.Args())
		return exitUsage
	}
	v, err := app.Migrate(context.Background(), *path, nil, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var cfgErr *config.Errors
		if errors.As(err, &cfgErr) {
			return exitUsage
		}
		return exitFailure
	}
	fmt.Fprintln(stdout, "schema version", v)
	return exitOK
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q (json or text)", format)
}
