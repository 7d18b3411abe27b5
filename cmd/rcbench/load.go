package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// benchAuth is the Authorization header every request carries; the
// generated rcrouter config accepts exactly it.
const benchAuth = "Bearer rcbench-webhook"

// webhookPath is where both servers take webhooks.
const webhookPath = "/webhooks/revenuecat"

// load is one closed-loop run: conns keep-alive connections, each sending
// its next request as soon as the previous answer is read. Connection i
// goes to addrs[i%len(addrs)]: several replicas share the load evenly.
type load struct {
	addrs   []string
	conns   int
	warmup  time.Duration
	window  time.Duration
	max     int64 // measured requests after which the window ends early; 0: none
	body    *fixture
	tag     string
	startAt uint64 // first request number (ids continue across runs of one tag)
	// mark, if set, is called when the measured window begins (true) and
	// ends (false), to read other counters over the same window.
	mark func(begin bool)
}

// loadResult is what the measured window saw.
type loadResult struct {
	ok, failed int64         // answers in the window: 200, anything else or an I/O error
	sent       uint64        // requests numbered by this run, warm-up included
	accepted   int64         // 200 answers, warm-up included
	elapsed    time.Duration // length of the measured window
	hist       histogram
	firstErr   string
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// run drives the server until the window ends (or ctx does). The window
// starts after the warm-up; answers count when they arrive inside it.
func (l load) run(ctx context.Context) (loadResult, error) {
	var (
		next      atomic.Uint64
		recording atomic.Bool
		stop      atomic.Bool
		measured  atomic.Int64
		accepted  atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		res       loadResult
	)
	next.Store(l.startAt)
	// Connect every connection first: a dial storm inside the window would
	// be measured as latency.
	conns := make([]net.Conn, l.conns)
	for i := range conns {
		c, err := net.DialTimeout("tcp", l.addrs[i%len(l.addrs)], 5*time.Second)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return res, fmt.Errorf("dial %s: %w", l.addrs[i%len(l.addrs)], err)
		}
		conns[i] = c
	}
	for i := range conns {
		wg.Add(1)
		go func(c net.Conn, addr string) {
			defer wg.Done()
			var h histogram
			var ok, failed int64
			var firstErr string
			cl := newRawClient(c, addr)
			defer func() { cl.close() }()
			for !stop.Load() {
				n := next.Add(1) - 1
				start := time.Now()
				code, err := cl.post(l.body, l.tag, n)
				lat := time.Since(start)
				if err == nil && code == 200 {
					accepted.Add(1)
				}
				if !recording.Load() {
					if err != nil {
						if cl, err = cl.redial(); err != nil {
							return
						}
					}
					continue
				}
				if err == nil && code == 200 {
					ok++
					h.add(lat)
				} else {
					failed++
					if firstErr == "" {
						if err != nil {
							firstErr = err.Error()
						} else {
							firstErr = "HTTP " + strconv.Itoa(code)
						}
					}
				}
				if l.max > 0 && measured.Add(1) >= l.max {
					stop.Store(true)
				}
				if err != nil {
					if cl, err = cl.redial(); err != nil {
						return
					}
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.hist.merge(&h)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}(conns[i], l.addrs[i%len(l.addrs)])
	}

	timer := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var start time.Time
	if timer(l.warmup) {
		if l.mark != nil {
			l.mark(true)
		}
		start = time.Now()
		recording.Store(true)
		deadline := start.Add(l.window)
		for !stop.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
			timer(min(20*time.Millisecond, time.Until(deadline)))
		}
	}
	stop.Store(true)
	end := time.Now()
	if l.mark != nil && !start.IsZero() {
		l.mark(false)
	}
	// Requests in flight finish within the server's answer time, or their
	// deadline (post) cuts them.
	wg.Wait()
	res.sent = next.Load() - l.startAt
	res.accepted = accepted.Load()
	if start.IsZero() {
		return res, ctx.Err()
	}
	res.elapsed = end.Sub(start)
	return res, ctx.Err()
}

// rawClient speaks just enough HTTP/1.1 over one keep-alive connection: it
// writes a prepared request and reads the status line, the headers and a
// Content-Length body. It costs the load generator far less CPU than
// net/http's client, which matters when the generator and the server share
// two cores.
type rawClient struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
	head []byte
}

func newRawClient(c net.Conn, addr string) *rawClient {
	return &rawClient{addr: addr, c: c, r: bufio.NewReaderSize(c, 16<<10), buf: make([]byte, 0, 4096)}
}

func (cl *rawClient) close() { cl.c.Close() }

// redial replaces a broken connection (a server that closed it, a timeout).
func (cl *rawClient) redial() (*rawClient, error) {
	cl.c.Close()
	time.Sleep(10 * time.Millisecond)
	c, err := net.DialTimeout("tcp", cl.addr, 5*time.Second)
	if err != nil {
		return cl, err
	}
	return newRawClient(c, cl.addr), nil
}

// post sends request n and returns the status code once the whole answer is read.
func (cl *rawClient) post(f *fixture, tag string, n uint64) (int, error) {
	b := cl.buf[:0]
	b = append(b, "POST "+webhookPath+" HTTP/1.1\r\nHost: "...)
	b = append(b, cl.addr...)
	b = append(b, "\r\nAuthorization: "+benchAuth+"\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(f.size()), 10)
	b = append(b, "\r\n\r\n"...)
	b = f.appendBody(b, tag, n)
	cl.buf = b
	// RevenueCat gives up after 60 s; so does a bench request, so a server
	// that stops answering cannot hang the run.
	cl.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := cl.c.Write(b); err != nil {
		return 0, err
	}
	return cl.readResponse()
}

var errBadResponse = errors.New("malformed HTTP response")

func (cl *rawClient) readResponse() (int, error) {
	line, err := cl.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, errBadResponse
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errBadResponse
	}
	length, closing := -1, false
	for {
		line, err := cl.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, errBadResponse
			}
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			closing = true
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, errors.New("chunked answers are not supported")
		}
	}
	if length < 0 {
		return 0, errors.New("answer without Content-Length")
	}
	if _, err := cl.r.Discard(length); err != nil {
		return 0, err
	}
	if closing {
		return code, errors.New("server closed the connection")
	}
	return code, nil
}

// histogram counts latencies in microseconds with 64 sub-buckets per power
// of two (under 1.6% error), in fixed memory however long the run.
type histogram struct {
	counts [64*40 + 128]uint64
	n      uint64
	max    uint64
}

func bucketOf(us uint64) int {
	if us < 128 {
		return int(us)
	}
	shift := bits.Len64(us) - 7
	return 64*shift + int(us>>shift)
}

// bucketValue is the upper end of bucket i, in microseconds.
func bucketValue(i int) uint64 {
	if i < 128 {
		return uint64(i)
	}
	shift := (i - 64) / 64
	mant := uint64(i - 64*shift)
	return (mant+1)<<shift - 1
}

func (h *histogram) add(d time.Duration) {
	us := uint64(d.Microseconds())
	i := bucketOf(us)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, us)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the latency at q (0..1).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), h.max)) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}
