package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/webhook"
	"github.com/rcrouter/rcrouter/internal/event"
)

// fanQueue bounds the events waiting for each destination in the fan-out
// baseline. When it is full the webhook waits, so ingest takes only the CPU
// the senders leave: the baseline measures how fast this machine can fan
// out while ingesting, not how much it can hold.
const fanQueue = 1024

// serveFanBaseline is the fan-out limit rcrouter is compared with: the
// ingest baseline, plus for every sink a bare loop of concurrency senders
// that post each accepted event through the same webhook adapter rcrouter
// uses (body raw, its own keep-alive transport). No store, no scheduler, no
// leases, no dispatch records: what is left is decode, HTTP client and sink.
func serveFanBaseline(ctx context.Context, l net.Listener, sinks []string, concurrency int, log io.Writer) error {
	queues := make([]chan *event.Event, len(sinks))
	var senders sync.WaitGroup
	for i, url := range sinks {
		name := fmt.Sprintf("sink-%d", i+1)
		d, err := webhook.New(name, webhook.Config{URL: url, Body: webhook.BodyRaw}, webhook.Options{Options: destinations.Options{Version: "rcbench"}})
		if err != nil {
			l.Close()
			return err
		}
		defer d.Close()
		q := make(chan *event.Event, fanQueue)
		queues[i] = q
		for range concurrency {
			senders.Add(1)
			go func() {
				// Owned by serveFanBaseline: ends when q closes.
				defer senders.Done()
				for ev := range q {
					r := d.Send(context.Background(), destinations.Delivery{ID: ev.ID, Key: ev.ID, Destination: name, Attempt: 1, Event: ev})
					if r.Outcome != destinations.Delivered {
						fmt.Fprintf(log, "rcbench -child fanbase: %s: %s %s\n", d, r.Outcome, r.Message)
					}
				}
			}()
		}
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		senders.Wait()
	}()

	return serveGin(ctx, l, func(c *gin.Context, ev *event.Event) {
		for _, q := range queues {
			q <- ev
		}
		c.JSON(http.StatusOK, gin.H{"status": "accepted", "event_id": ev.ID, "destinations": sinks})
	})
}

// sinkList is a repeatable -sink flag.
type sinkList []string

func (s *sinkList) String() string     { return strings.Join(*s, ",") }
func (s *sinkList) Set(v string) error { *s = append(*s, v); return nil }
