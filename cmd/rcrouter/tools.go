package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rcrouter/rcrouter/internal/app"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/router"
)

func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stderr)
	path := fs.String("config", defaultConfig(), "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	// Any problem with the file, unreadable or invalid, is exit 2.
	cfg, err := config.Load(*path, os.LookupEnv, app.Types())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if _, err := router.Compile(cfg.Routes); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok (%d destinations, %d routes)\n", *path, len(cfg.Names), len(cfg.Routes))
	return exitOK
}

func routes(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("routes", stderr)
	path := fs.String("config", defaultConfig(), "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: rcrouter routes --config PATH EVENT.json")
		return exitUsage
	}
	cfg, err := config.Load(*path, os.LookupEnv, app.Types())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	rs, err := router.Compile(cfg.Routes)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter:", err)
		return exitUsage
	}
	e, err := revenuecat.Decode(body)
	if err != nil {
		fmt.Fprintf(stderr, "rcrouter: %s: %v\n", fs.Arg(0), err)
		return exitUsage
	}
	dec := rs.Route(e)
	fmt.Fprintf(stdout, "event %s  type %s  lifecycle %s  environment %s  entitlements [%s]\n\n",
		e.ID, e.Type, e.Lifecycle, e.Environment, strings.Join(e.Entitlements, " "))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tVERDICT\tREASON")
	for _, v := range dec.Verdicts {
		verdict := "no"
		if v.Matched {
			verdict = "MATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, verdict, v.Reason)
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	if len(dec.Destinations) == 0 {
		fmt.Fprintln(stdout, "destinations: none (the event would be stored as unrouted)")
		return exitOK
	}
	fmt.Fprintln(stdout, "destinations:")
	for _, d := range dec.Destinations {
		fmt.Fprintf(stdout, "  %s (%s) via route %s\n", d.Destination, cfg.Destinations[d.Destination].Type, d.Route)
	}
	return exitOK
}

func send(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("send", stderr)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/revenuecat", "webhook endpoint")
	auth := fs.String("auth", os.Getenv("RC_WEBHOOK_AUTH"), "Authorization header value (default $RC_WEBHOOK_AUTH)")
	signing := fs.String("signing-secret", os.Getenv("RC_WEBHOOK_SIGNING_SECRET"), "sign the body like RevenueCat (X-RevenueCat-Webhook-Signature)")
	newID := fs.Bool("new-id", false, "give the event a fresh random id (post a fixture more than once)")
	timeout := fs.Duration("timeout", 60*time.Second, "request timeout (RevenueCat waits 60s)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: rcrouter send --url URL [--auth VALUE] EVENT.json")
		return exitUsage
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter:", err)
		return exitUsage
	}
	if *newID {
		if body, err = withNewID(body); err != nil {
			fmt.Fprintf(stderr, "rcrouter: %s: %v\n", fs.Arg(0), err)
			return exitUsage
		}
	}
	req, err := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter:", err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rcrouter-send/"+version)
	if *auth != "" {
		req.Header.Set("Authorization", *auth)
	}
	if *signing != "" {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(*signing))
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		req.Header.Set("X-RevenueCat-Webhook-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "rcrouter:", err)
		return exitFailure
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%d %s\n", resp.StatusCode, bytes.TrimSpace(out))
	// Only 200 counts, as for RevenueCat.
	if resp.StatusCode != http.StatusOK {
		return exitFailure
	}
	return exitOK
}

// withNewID replaces event.id, keeping every other byte's meaning.
func withNewID(body []byte) ([]byte, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(env["event"], &ev); err != nil {
		return nil, fmt.Errorf("no event object: %w", err)
	}
	var b [16]byte
	rand.Read(b[:])
	ev["id"], _ = json.Marshal(hex.EncodeToString(b[:]))
	var err error
	if env["event"], err = json.Marshal(ev); err != nil {
		return nil, err
	}
	return json.Marshal(env)
}
