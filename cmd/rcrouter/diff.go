package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/backtest"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/router"
)

// routesDiff is `rcrouter routes diff`: exit 0 when no destination gains or
// loses an event, 1 when one does (or the store cannot be read), 2 when a
// config is invalid — a CI check on a config repository.
func routesDiff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("routes diff", stderr)
	cur := fs.String("config", defaultConfig(), "the running config (its store holds the events)")
	next := fs.String("new", "", "the proposed config")
	since := fs.Duration("since", 168*time.Hour, "replay the events received this long ago and since")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *next == "" || fs.NArg() > 0 || *since <= 0 {
		fmt.Fprintln(stderr, "usage: rcrouter routes diff --config CURRENT.yaml --new NEW.yaml [--since 168h] [--json]")
		return exitUsage
	}
	// Both files are checked before anything is read, and every problem of
	// both is printed.
	cfg, curRoutes, err1 := loadRoutes(*cur)
	_, newRoutes, err2 := loadRoutes(*next)
	if err1 != nil || err2 != nil {
		for _, err := range []error{err1, err2} {
			if err != nil {
				fmt.Fprintln(stderr, err)
			}
		}
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := backtest.Options{Since: time.Now().Add(-*since)}
	tty := isTerminal(stderr)
	if tty {
		opts.Progress = func(n int, reached time.Time) {
			fmt.Fprintf(stderr, "\r\033[Krouting stored events: %d read, back to %s", n, reached.Local().Format(time.DateTime))
		}
	}
	res, err := app.Backtest(ctx, cfg, curRoutes, newRoutes, opts)
	if tty {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter routes diff:", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "rcrouter routes diff:", err)
			return exitFailure
		}
	} else {
		printDiff(stdout, res, *since)
	}
	if res.Changed() {
		return exitFailure
	}
	return exitOK
}

func loadRoutes(path string) (*config.Config, *router.Routes, error) {
	cfg, err := config.Load(path, os.LookupEnv, app.Types())
	if err != nil {
		return nil, nil, err
	}
	rs, err := router.Compile(cfg.Routes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, rs, nil
}

func printDiff(w io.Writer, res backtest.Result, since time.Duration) {
	noun := "events"
	if res.Events == 1 {
		noun = "event"
	}
	fmt.Fprintf(w, "%d %s received in the last %s routed through both configs", res.Events, noun, config.ShortDuration(since))
	if res.Undecodable > 0 {
		fmt.Fprintf(w, " (%d stored bodies did not decode and were left out)", res.Undecodable)
	}
	fmt.Fprintln(w)
	if !res.Changed() {
		fmt.Fprintln(w, "no change: every event reaches the same destinations")
		return
	}
	names := make([]string, 0, len(res.Diff))
	for n := range res.Diff {
		names = append(names, n)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tGAINED\tLOST\tSAMPLES")
	for _, n := range names {
		c := res.Diff[n]
		var samples []string
		if len(c.SamplesGained) > 0 {
			samples = append(samples, "+ "+strings.Join(c.SamplesGained, " "))
		}
		if len(c.SamplesLost) > 0 {
			samples = append(samples, "- "+strings.Join(c.SamplesLost, " "))
		}
		fmt.Fprintf(tw, "%s\t+%d\t-%d\t%s\n", n, c.Gained, c.Lost, strings.Join(samples, "  "))
	}
	tw.Flush()
}

// isTerminal reports whether w is a character device (progress is drawn
// only there, never into a CI log or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
