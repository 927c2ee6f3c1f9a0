package waf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"hedge/internal/linelog"
	"hedge/waf/crs"
)

// AuditLog appends one JSON line per stopped request and per request with
// matched rules: the request id, the client, the layer and, for the rule
// engine, the rule ids with their (truncated) matched data. Lines are
// buffered and flushed every FlushEvery, not synced one by one: under attack
// the WAF writes many lines, and a lost second of them is an acceptable
// price for not stalling the request path.
type AuditLog struct {
	w    *linelog.Writer
	path string
}

// FlushEvery bounds how long an audit line may sit in the buffer.
const FlushEvery = time.Second

// OpenAuditLog opens (creating) the audit file at path and starts its
// flusher; Close stops it.
func OpenAuditLog(path string) (*AuditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("waf audit log: %w", err)
	}
	w, err := linelog.Open(path, FlushEvery)
	if err != nil {
		return nil, fmt.Errorf("waf audit log: %w", err)
	}
	return &AuditLog{w: w, path: path}, nil
}

// Path is the file the log appends to.
func (a *AuditLog) Path() string { return a.path }

// Close flushes and closes the file (safe to call twice).
func (a *AuditLog) Close() error { return a.w.Close() }

type auditRule struct {
	ID       int    `json:"id"`
	Msg      string `json:"msg,omitempty"`
	Data     string `json:"data,omitempty"`
	Severity int    `json:"severity,omitempty"`
}

type auditLine struct {
	At       time.Time   `json:"at"`
	Region   string      `json:"region"`
	Node     string      `json:"node"`
	Listener string      `json:"listener"`
	Route    string      `json:"route"`
	ID       string      `json:"request_id"`
	Client   string      `json:"client"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Layer    Layer       `json:"layer"`
	Action   string      `json:"action"` // blocked | detected
	Status   int         `json:"status,omitempty"`
	Policy   string      `json:"policy,omitempty"`
	Rule     string      `json:"rule,omitempty"`
	Detail   string      `json:"detail,omitempty"`
	Rules    []auditRule `json:"rules,omitempty"`
}

// Write records ev for the node (region, node).
func (a *AuditLog) Write(region, node string, ev *Event) {
	l := auditLine{
		At: time.Now().UTC(), Region: region, Node: node, Listener: ev.Listener, Route: ev.Route,
		ID: string(ev.ID), Client: ev.Client.String(), Method: string(ev.Method), Path: crs.Cut(string(ev.Path), 256),
		Layer: ev.Layer, Action: "detected", Policy: ev.Policy, Rule: ev.Rule, Detail: ev.Detail,
	}
	if ev.Blocked {
		l.Action = "blocked"
		l.Status = ev.Status
	}
	for _, m := range ev.Matches {
		l.Rules = append(l.Rules, auditRule{ID: m.ID, Msg: m.Msg, Data: m.Data, Severity: m.Severity})
	}
	b, err := json.Marshal(&l)
	if err != nil {
		return
	}
	a.w.Write(append(b, '\n'))
}
