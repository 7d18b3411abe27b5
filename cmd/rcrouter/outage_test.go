package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// tcpProxy stands between rcrouter and PostgreSQL so a test can take the
// database away (every connection cut, new ones refused) and bring it back
// on the same address, as a database restart or a network loss would.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, addr: freeAddr(t), target: target, conns: map[net.Conn]struct{}{}}
	p.up()
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) up() {
	p.t.Helper()
	var l net.Listener
	if !testutil.Poll(10*time.Second, func() bool {
		var err error
		l, err = net.Listen("tcp", p.addr)
		return err == nil
	}) {
		p.t.Fatalf("proxy cannot listen on %s again", p.addr)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	for _, pair := range [][2]net.Conn{{c, s}, {s, c}} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			io.Copy(pair[0], pair[1])
			pair[0].Close()
			pair[1].Close()
		}()
	}
}

// down closes the listener and every connection through it.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// TestDatabaseOutage takes the database away from a running replica: the
// webhook answers 503 with Retry-After and never 200, /readyz fails; when
// the database is back everything resumes without a restart, the events
// refused meanwhile are accepted when RevenueCat retries them, and every
// accepted event is delivered.
func TestDatabaseOutage(t *testing.T) {
	dsn, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, dsn.Host)
	dsn.Host = proxy.addr
	sink := newOverlapSink(t)
	rs, _ := startReplicas(t, 1, dsn.String(), sink.srv.URL)
	addr := rs[0].addr
	ready := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if code, status, err := postStatus(addr, "before-1"); code != 200 || status != "accepted" {
		t.Fatalf("before the outage: %d %s %v", code, status, err)
	}

	proxy.down()
	if !testutil.Poll(15*time.Second, func() bool { return ready() == http.StatusServiceUnavailable }) {
		t.Fatalf("/readyz answers %d with the database down, want 503", ready())
	}
	refused := []string{"during-1", "during-2", "during-3"}
	for _, id := range refused {
		req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/revenuecat", bytes.NewReader(eventBody(id)))
		req.Header.Set("Authorization", procAuth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("post %s: %v", id, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("post %s with the database down: %d Retry-After %q, want 503 with Retry-After",
				id, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}

	proxy.up()
	if !testutil.Poll(60*time.Second, func() bool { return ready() == http.StatusOK }) {
		t.Fatalf("/readyz answers %d after the database came back; logs:\n%s", ready(), rs[0].p.log())
	}
	// RevenueCat retries what got 503. None of it was stored here (each
	// request found its connection gone), but a 503 may in general follow a
	// commit whose answer was lost, so a duplicate is a correct answer too;
	// either way the event must be delivered.
	for _, id := range refused {
		code, status, err := postStatus(addr, id)
		if code != 200 || (status != "accepted" && status != "duplicate") {
			t.Fatalf("post %s after the outage: %d %q %v; logs:\n%s", id, code, status, err, rs[0].p.log())
		}
	}
	if code, status, err := postStatus(addr, "after-1"); code != 200 || status != "accepted" {
		t.Fatalf("post after-1: %d %q %v; logs:\n%s", code, status, err, rs[0].p.log())
	}
	want := append([]string{"before-1", "after-1"}, refused...)
	if !testutil.Poll(60*time.Second, func() bool {
		got, _ := sink.snapshot()
		for _, id := range want {
			if got[deliveryKey(id, "sink")] == 0 {
				return false
			}
		}
		return true
	}) {
		got, _ := sink.snapshot()
		t.Fatalf("not every accepted event was delivered after the outage: sink got %v (/readyz %d); logs:\n%s", got, ready(), rs[0].p.log())
	}
	if err := stopProc(t, rs[0].p, syscall.SIGTERM); err != nil {
		t.Fatalf("stop after the outage: %v; logs:\n%s", err, rs[0].p.log())
	}
}
