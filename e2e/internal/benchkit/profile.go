package benchkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Profile is a CPU profile of hedge taken while a harness measured it. A
// harness whose report names the fields otherwise converts it to its own
// struct type with the same fields (conversion ignores tags).
type Profile struct {
	File string `json:",omitempty"` // the pprof file, kept next to the report
	Top  string `json:",omitempty"` // go tool pprof -top, the heaviest functions
	Err  string `json:",omitempty"`
}

// TakeProfile fetches secs seconds of CPU profile from hedge's admin
// listener (net/http/pprof), stores it as dir/name.pprof and lists its
// nodecount heaviest functions with go tool pprof. The load must last
// longer than secs for the profile to show only what is measured. secs
// below 1 makes pprof take its default of 30 seconds.
func TakeProfile(ctx context.Context, admin string, secs, nodecount int, dir, name string) Profile {
	c := &http.Client{Timeout: time.Duration(secs+15) * time.Second, Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs), nil)
	if err != nil {
		return Profile{Err: err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		return Profile{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Profile{Err: err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return Profile{Err: fmt.Sprintf("pprof: %s: %.200s", resp.Status, b)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Profile{Err: err.Error()}
	}
	file := filepath.Join(dir, name+".pprof")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return Profile{Err: err.Error()}
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodecount), file).CombinedOutput()
	if err != nil {
		return Profile{File: file, Err: fmt.Sprintf("go tool pprof: %v: %.300s", err, out)}
	}
	return Profile{File: file, Top: strings.TrimSpace(string(out))}
}
