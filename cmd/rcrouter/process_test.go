package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// The test binary doubles as rcrouter: with RCROUTER_TEST_MAIN=1 it runs
// main's run() with the arguments after "--". That lets a test start, kill
// and restart a real process without building a second binary.
func TestMain(m *testing.M) {
	if os.Getenv("RCROUTER_TEST_MAIN") == "1" {
		args := os.Args
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const (
	procAuth  = "Bearer process-test-auth"
	procAdmin = "process-test-admin"
)

// proc is one rcrouter process started by a test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

// freeAddr reserves a loopback port for a child process.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeConfig writes a config with a file destination and a webhook
// destination pointing at sinkURL.
func writeConfig(t *testing.T, dir, addr, sinkURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  listen: %q
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  path: data/rcrouter.db
defaults:
  timeout: 2s
  retry: {initial_interval: 100ms, max_interval: 1s}
destinations:
  archive:
    file: {path: data/events.jsonl}
  sink:
    webhook: {url: %q}
routes:
  - name: all
    to: [archive, sink]
`, addr, procAuth, procAdmin, sinkURL)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, args...)
}

// startProcEnv is startProc with more environment variables (VAR=value).
func startProcEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), "RCROUTER_TEST_MAIN=1"), env...)
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// waitReady asks /readyz until it answers 200.
func waitReady(t *testing.T, p *proc, addr string) {
	t.Helper()
	if !testutil.Poll(30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("rcrouter did not become ready; logs:\n%s", p.log())
	}
}

func eventBody(id string) []byte {
	return []byte(`{"api_version":"1.0","event":{"id":"` + id + `","type":"RENEWAL","app_user_id":"u-` + id +
		`","product_id":"pro_monthly","entitlement_ids":["pro"],"environment":"PRODUCTION","store":"APP_STORE","price":9.99,"currency":"USD","event_timestamp_ms":1767225603000}}`)
}

func postEvent(client *http.Client, addr, id string) (int, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/revenuecat", bytes.NewReader(eventBody(id)))
	req.Header.Set("Authorization", procAuth)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type eventDetail struct {
	Deliveries []struct {
		Destination string `json:"destination"`
		Status      string `json:"status"`
	} `json:"deliveries"`
}

func getEvent(t *testing.T, addr, id string) (eventDetail, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/events/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+procAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d eventDetail
	json.NewDecoder(resp.Body).Decode(&d)
	return d, resp.StatusCode
}

// TestKillAfterAckLosesNothing posts events concurrently, kills the process
// with SIGKILL while posts are still in flight, restarts it on the same
// files, and checks that every event that got a 200 is stored with both of
// its deliveries — and that they all get delivered.
func TestKillAfterAckLosesNothing(t *testing.T) {
	var sinkMu sync.Mutex
	delivered := map[string]int{}
	sink := newSink(t, func(id string) {
		sinkMu.Lock()
		delivered[id]++
		sinkMu.Unlock()
	})
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, sink)

	p := startProc(t, "serve", "--config", cfg)
	waitReady(t, p, addr)

	var ackMu sync.Mutex
	var acked []string
	client := &http.Client{Timeout: 5 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("kill-%d-%d", w, i)
				code, err := postEvent(client, addr, id)
				if err != nil {
					return // the process is gone
				}
				if code == 200 {
					ackMu.Lock()
					acked = append(acked, id)
					ackMu.Unlock()
				}
			}
		}(w)
	}
	// Let load build up, then kill without warning while posts are in flight.
	testutil.Eventually(t, 30*time.Second, func() bool {
		ackMu.Lock()
		defer ackMu.Unlock()
		return len(acked) >= 200
	}, "fewer than 200 posts acknowledged in 30s")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	close(stop)
	wg.Wait()

	p2 := startProc(t, "serve", "--config", cfg)
	waitReady(t, p2, addr)
	for _, id := range acked {
		d, code := getEvent(t, addr, id)
		if code != 200 {
			t.Fatalf("acknowledged event %s lost after SIGKILL (GET answered %d)", id, code)
		}
		if len(d.Deliveries) != 2 {
			t.Fatalf("acknowledged event %s has %d deliveries, want 2", id, len(d.Deliveries))
		}
	}
	// Every acknowledged event reaches the sink after the restart.
	missing := 0
	if !testutil.Poll(30*time.Second, func() bool {
		sinkMu.Lock()
		defer sinkMu.Unlock()
		missing = 0
		for _, id := range acked {
			if delivered[id] == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d acknowledged events never reached the sink; logs:\n%s", missing, len(acked), p2.log())
	}
	t.Logf("%d events acknowledged before SIGKILL; all stored and delivered after restart", len(acked))
}

// TestGracefulStop: SIGTERM makes the process stop cleanly with exit 0.
func TestGracefulStop(t *testing.T) {
	sink := newSink(t, func(string) {})
	dir := t.TempDir()
	addr := freeAddr(t)
	p := startProc(t, "serve", "--config", writeConfig(t, dir, addr, sink))
	waitReady(t, p, addr)
	if code, err := postEvent(http.DefaultClient, addr, "graceful-1"); err != nil || code != 200 {
		t.Fatalf("post: %d %v", code, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; logs:\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "stopped") {
		t.Errorf("no clean stop in logs:\n%s", p.log())
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  listen: [\nroutes: 3\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"version", []string{"version"}, exitOK},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"validate missing file", []string{"validate", "--config", filepath.Join(dir, "nope.yaml")}, exitUsage},
		{"validate bad yaml", []string{"validate", "--config", bad}, exitUsage},
		{"routes without event", []string{"routes", "--config", bad}, exitUsage},
		{"send without file", []string{"send"}, exitUsage},
		{"bad flag", []string{"serve", "--nope"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(tt.args, &out, &errb); got != tt.want {
				t.Fatalf("exit %d, want %d; stderr: %s", got, tt.want, errb.String())
			}
		})
	}
}
