package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// proc is a server under test running as a child process.
type proc struct {
	kind  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	exit  chan error
}

// startChild runs this binary as "-child kind" and waits for its address.
func startChild(kind string, args []string, stderr io.Writer) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-child", kind}, args...)...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{kind: kind, cmd: cmd, stdin: stdin, exit: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		// Owned by the child's lifetime: reads until its stdout closes.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				lines <- addr
			}
		}
		close(lines)
		p.exit <- cmd.Wait()
	}()
	select {
	case addr, ok := <-lines:
		if !ok {
			return nil, fmt.Errorf("%s child exited before listening: %v", kind, <-p.exit)
		}
		p.addr = addr
		return p, nil
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s child did not listen within 60s", kind)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop closes the child's stdin (it shuts down gracefully) and waits; after
// timeout it kills this one child by its pid.
func (p *proc) stop(timeout time.Duration) error {
	p.stdin.Close()
	select {
	case err := <-p.exit:
		return err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s child did not stop within %s; killed", p.kind, timeout)
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exit
}

// memory reads the child's peak and current resident set (VmHWM, VmRSS) from
// /proc/<pid>/status, in bytes. The kernel keeps VmHWM: the peak of the
// whole life of the process, however briefly it lasted.
func (p *proc) memory() (peak, current int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peak = n << 10
		case "VmRSS":
			current = n << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM in /proc/<pid>/status")
	}
	return peak, current, nil
}

// cpu is the CPU time the child used so far (user + system), from
// /proc/<pid>/stat.
func (p *proc) cpu() time.Duration {
	cpu, _, _ := statCPU(fmt.Sprintf("/proc/%d/stat", p.pid()))
	return cpu
}

func numCPU() int { return runtime.NumCPU() }

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
