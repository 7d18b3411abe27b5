package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// child runs one server under test: "rcbench -child baseline|fanbase|rcrouter
// [-config PATH] [-sink URL]... [-concurrency N] [-cpuprofile PATH]". It listens on 127.0.0.1, prints
// "LISTEN <addr>" on stdout, and stops when its stdin ends: when the parent
// closes it, or when the parent dies.
func child(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "rcbench -child: want baseline or rcrouter")
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("rcbench -child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "rcrouter config file")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	var sinks sinkList
	fs.Var(&sinks, "sink", "fanbase: a sink URL to post every event to (repeatable)")
	concurrency := fs.Int("concurrency", 4, "fanbase: senders per sink")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "rcbench -child:", err)
		return 1
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(stderr, "rcbench -child:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "rcbench -child:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Owned by the process: ends with stdin, and stops the server.
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch kind {
	case "baseline":
		err = serveBaseline(ctx, l)
	case "fanbase":
		err = serveFanBaseline(ctx, l, sinks, max(*concurrency, 1), stderr)
	case "rcrouter":
		err = serveRcrouter(ctx, l, *cfg, log)
	default:
		err = fmt.Errorf("unknown child %q", kind)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rcbench -child:", err)
		return 1
	}
	return 0
}

func announce(l net.Listener) { fmt.Printf("LISTEN %s\n", l.Addr()) }

func serveRcrouter(ctx context.Context, l net.Listener, cfg string, log *slog.Logger) error {
	a, err := app.New(app.Options{
		ConfigPath: cfg,
		Listener:   l,
		Logger:     log,
		Getenv:     func(string) (string, bool) { return "", false },
		Version:    "rcbench",
	})
	if err != nil {
		l.Close()
		return err
	}
	announce(l)
	return a.Run(ctx)
}

// serveBaseline is the in-memory limit rcrouter is compared with: gin and
// net/http configured as rcrouter's server, reading the body under the same
// size limit, decoding it with revenuecat.Decode (the same parse and
// normalization rcrouter does) and answering 200 with a small JSON body like
// rcrouter's. No authorization check, no routing, no store, no fan-out.
func serveBaseline(ctx context.Context, l net.Listener) error {
	return serveGin(ctx, l, func(c *gin.Context, ev *event.Event) {
		c.JSON(http.StatusOK, gin.H{"status": "accepted", "event_id": ev.ID, "destinations": []string{}})
	})
}

// serveGin serves webhooks on l as the baselines do, until ctx ends: gin and
// net/http configured as rcrouter's server, the body read under the same
// size limit and decoded with revenuecat.Decode; accept answers the event.
func serveGin(ctx context.Context, l net.Listener, accept func(c *gin.Context, ev *event.Event)) error {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST(webhookPath, func(c *gin.Context) {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		ev, err := revenuecat.Decode(body)
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		accept(c, ev)
	})
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, IdleTimeout: 120 * time.Second}
	announce(l)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
