package main

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

// profileResult is hedge's CPU profile during one step's window.
type profileResult struct {
	File string `json:",omitempty"` // the pprof file, next to the report
	Top  string `json:",omitempty"` // go tool pprof -top
	Err  string `json:",omitempty"`
}

// takeProfile fetches secs seconds of CPU profile from hedge's admin
// listener (net/http/pprof), stores it as dir/name.pprof and lists its
// heaviest functions with go tool pprof.
func takeProfile(ctx context.Context, admin string, secs int, dir, name string) profileResult {
	c := &http.Client{Timeout: time.Duration(secs+15) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, max(1, secs)), nil)
	if err != nil {
		return profileResult{Err: err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		return profileResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return profileResult{Err: err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return profileResult{Err: fmt.Sprintf("pprof: %s: %.200s", resp.Status, b)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return profileResult{Err: err.Error()}
	}
	file := filepath.Join(dir, name+".pprof")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return profileResult{Err: err.Error()}
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", file).CombinedOutput()
	if err != nil {
		return profileResult{File: file, Err: fmt.Sprintf("go tool pprof: %v: %.300s", err, out)}
	}
	return profileResult{File: file, Top: strings.TrimSpace(string(out))}
}
