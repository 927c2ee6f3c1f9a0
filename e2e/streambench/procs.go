package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hedge/e2e/internal/benchkit"
)

// child is a role process of this program (publisher, viewers) pinned to a
// CPU, driven over its stdin and answering one JSON line per command on
// its stdout; its stderr goes to dir/name.out.
type child struct {
	*benchkit.Proc
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(name, dir string, cpu int, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := benchkit.Command(context.Background(), cpu, self, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := benchkit.StartCmd(name, dir, cmd)
	if err != nil {
		return nil, err
	}
	return &child{Proc: p, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

// call sends one command and decodes the answer into v, within timeout.
func (c *child) call(timeout time.Duration, v any, cmd string, args ...any) error {
	line := cmd
	for _, a := range args {
		line += " " + fmt.Sprint(a)
	}
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return fmt.Errorf("%s: %s: %w\n%s", c.Name(), cmd, err, c.Tail())
	}
	return c.read(timeout, v)
}

// read decodes the next JSON line of the child's output into v.
func (c *child) read(timeout time.Duration, v any) error {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() { l, err := c.out.ReadString('\n'); ch <- result{l, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("%s exited: %v\n%s", c.Name(), r.err, c.Tail())
		}
		if v == nil {
			return nil
		}
		return json.Unmarshal([]byte(r.line), v)
	case <-time.After(timeout):
		// The reader goroutine ends when stop closes the pipe.
		return fmt.Errorf("%s: no answer in %s\n%s", c.Name(), timeout, c.Tail())
	}
}

// stop closes stdin (the child leaves its sessions and exits), then kills
// its process group if it has not exited after grace.
func (c *child) stop(grace time.Duration) {
	if c == nil {
		return
	}
	_ = c.in.Close()
	select {
	case <-c.Done():
	case <-time.After(grace):
		c.Stop(syscall.SIGKILL, time.Second)
	}
}

// hedgeConfig is two regions of one node each, a plain-HTTP listener with
// the stream route as the demo configures it (WAF on, block mode PL1, as
// in the demo), ICE on each listener's host at one UDP port, and no
// viewer caps or per-address limits.
const hedgeConfig = `# written by e2e/streambench
deployment: streambench
data_dir: {{dir}}/data
waf: {mode: block, paranoia_level: 1}
log: {level: warn, format: text, access: {enabled: false}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 2s}
routes:
  - name: live
    kind: stream
    match: {path_prefix: /live/}
    max_body_bytes: 64KiB
streams:
  studios:
    - {name: bench, token: {{token}}}
  ice: {udp_port: {{udp}}}
  relay_grace: 5s
  # The bench finds the fan-out's limit itself (and its overload
  # protection), with every viewer from one address: no cap or
  # per-address limit of the defaults may refuse them first.
  max_viewers_per_stream: -1
  max_viewers_per_node: -1
  max_connecting_viewers: -1
  per_address: {rate: 100000/s, burst: 100000, max_sessions: -1}
regions:
  - name: a
    nodes:
      - name: a-1
        listeners:
          - {name: public, address: "{{hostA}}:{{port}}", tls: {mode: "off"}}
        admin: {address: "{{hostA}}:{{admin}}"}
  - name: b
    nodes:
      - name: b-1
        listeners:
          - {name: public, address: "{{hostB}}:{{port}}", tls: {mode: "off"}}
        admin: {address: "{{hostB}}:{{admin}}"}
`

const studioToken = "bench-studio-token"

// nodePorts are the ports every node listens on (each on its own host).
type nodePorts struct{ http, admin, udp int }

// writeConfig picks ports free on both hosts and writes the configuration.
func writeConfig(hedgeBin, dir, hostA, hostB string) (string, nodePorts, error) {
	var np nodePorts
	port, err := freePort(hostA, hostB, "tcp")
	if err != nil {
		return "", np, err
	}
	admin := port
	for admin == port {
		if admin, err = freePort(hostA, hostB, "tcp"); err != nil {
			return "", np, err
		}
	}
	udp, err := freePort(hostA, hostB, "udp")
	if err != nil {
		return "", np, err
	}
	np = nodePorts{http: port, admin: admin, udp: udp}
	conf := strings.NewReplacer("{{dir}}", dir, "{{token}}", studioToken, "{{udp}}", strconv.Itoa(udp),
		"{{hostA}}", hostA, "{{hostB}}", hostB, "{{port}}", strconv.Itoa(port), "{{admin}}", strconv.Itoa(admin)).Replace(hedgeConfig)
	path, err := benchkit.WriteHedgeConfig(hedgeBin, dir, conf)
	return path, np, err
}

// startHedge runs one node pinned to cpu and waits until its stream route
// answers.
func startHedge(ctx context.Context, hedgeBin, dir, conf, region string, cpu int, base string) (*benchkit.Proc, error) {
	p, err := benchkit.StartHedge("hedge-"+region, dir, cpu, hedgeBin, conf, region, region+"-1")
	if err != nil {
		return nil, err
	}
	err = benchkit.WaitFor(ctx, p, 30*time.Second, func() error {
		return benchkit.Expect(httpClient, http.MethodOptions, base+"probe/whep", http.StatusNoContent)
	})
	if err != nil {
		p.Stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return p, nil
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) int64 { return benchkit.SumFields([]int{pid}, "status", "VmRSS")[0] << 10 }

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(pid int) uint64 {
	t, _ := benchkit.CPUTicks(pid) // 0 once it has exited
	return t
}
