package webhook

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// cannedSink answers every HTTP/1.1 request on keep-alive connections with
// an empty 200, parsing no more than it must, so a benchmark's CPU is the
// client's.
func cannedSink(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.Cleanup(func() { c.Close() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReader(c)
				for {
					n := 0
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if _, err := r.Discard(n); err != nil {
						return
					}
					if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/hook"
}

// BenchmarkSend is one delivery attempt of a 1.7 KB RevenueCat body in raw
// mode, over keep-alive connections, from parallel callers (as the
// scheduler's slots). It reports the client's CPU per Send.
func BenchmarkSend(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("..", "..", "docs", "events", "initial_purchase_paid_eur.json"))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := revenuecat.Decode(body)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New("bench", Config{URL: cannedSink(b)}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var i sync.Mutex
	n := 0
	cpu := benchCPU()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i.Lock()
			n++
			k := n
			i.Unlock()
			res := d.Send(context.Background(), destinations.Delivery{ID: fmt.Sprint(k), Key: "rc-0123456789abcdef", Destination: "bench", Attempt: 1, Event: ev})
			if res.Outcome != destinations.Delivered {
				b.Errorf("outcome %s: %s", res.Outcome, res.Message)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(benchCPU()-cpu)/float64(b.N)/1e3, "cpu-µs/send")
}

// benchCPU is the CPU time (user + system) of this process so far.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
