package dnsfail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"hedge/configs"
	"hedge/internal/adminauth"
	"hedge/internal/health"
	"hedge/internal/problem"
)

// Status is the DNS part of GET /status.
type Status struct {
	Address  string            `json:"address"`
	Zones    []string          `json:"zones"`
	Services []ServiceStatus   `json:"services"`
	Drained  map[string]string `json:"drained_edges,omitempty"`
	// Changes are the latest answer changes, oldest first.
	Changes []Change `json:"changes"`
}

// ServiceStatus is one service name's current answers and why.
type ServiceStatus struct {
	Name       string              `json:"name"`
	Policy     string              `json:"policy"`
	TTL        uint32              `json:"ttl"`
	Answers    map[string][]string `json:"answers"` // region → addresses that may answer
	FailOpen   bool                `json:"fail_open"`
	LastChange *Change             `json:"last_change,omitempty"`
	Overrides  []Override          `json:"overrides,omitempty"`
	Edges      []EdgeStatus        `json:"edges"`
}

// EdgeStatus is one candidate edge's health.
type EdgeStatus struct {
	Region string   `json:"region"`
	Node   string   `json:"node"`
	Addrs  []string `json:"addresses"`
	health.Status
}

// Status reports zones, services, their answers and the latest changes.
func (s *Server) Status() Status {
	st := s.st.Load()
	out := Status{Address: s.Addr()}
	for _, z := range st.zones {
		out.Zones = append(out.Zones, z.apex)
	}
	for _, svc := range st.services {
		v := svc.view.Load()
		ss := ServiceStatus{Name: svc.name, Policy: svc.kind, TTL: svc.ttlNow(), Answers: map[string][]string{}, FailOpen: v.failOpen}
		for _, r := range v.regions {
			ss.Answers[r.name] = addrStrings(r.addrs)
		}
		svc.mu.Lock()
		if !svc.last.At.IsZero() {
			c := svc.last
			ss.LastChange = &c
		}
		for _, r := range svc.regions {
			if o, ok := svc.overrides[r]; ok {
				ss.Overrides = append(ss.Overrides, o)
			}
		}
		svc.mu.Unlock()
		for _, e := range svc.edges {
			ss.Edges = append(ss.Edges, EdgeStatus{Region: e.region, Node: e.node, Addrs: addrStrings(e.addrs), Status: e.target.Status()})
		}
		out.Services = append(out.Services, ss)
	}
	s.logMu.Lock()
	out.Changes = append([]Change(nil), s.changes...)
	if len(s.drained) > 0 {
		out.Drained = map[string]string{}
		for k, v := range s.drained {
			out.Drained[k] = v
		}
	}
	s.logMu.Unlock()
	return out
}

func addrStrings(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// ErrNotFound is returned for an edge or service the configuration lacks.
var ErrNotFound = errors.New("not found")

// SetEdgeDraining takes node's edge out of (or back into) every service's
// answers at once: an edge announces its drain instead of waiting to be
// probed. The probes keep running and decide from then on.
func (s *Server) SetEdgeDraining(node string, draining bool, reason string) error {
	st := s.st.Load()
	found := false
	s.logMu.Lock()
	if draining {
		s.drained[node] = reason
	} else {
		delete(s.drained, node)
	}
	s.logMu.Unlock()
	for _, svc := range st.services {
		for _, e := range svc.edges {
			if e.node == node {
				found = true
				e.target.Set(!draining, reason)
			}
		}
	}
	if !found {
		return fmt.Errorf("edge %q: %w", node, ErrNotFound)
	}
	s.metrics.pushes.WithLabelValues(node, fmt.Sprint(draining)).Inc()
	s.log.Warn("edge drain announced", "edge", node, "draining", draining, "reason", reason)
	return nil
}

// Override forces region in or out of a service's answers, or clears the
// override (mode "clear"). Every override is audited.
func (s *Server) Override(name string, o Override) error {
	st := s.st.Load()
	svc := st.byName[strings.ToLower(strings.TrimSuffix(name, "."))+"."]
	if svc == nil {
		return fmt.Errorf("service %q: %w", name, ErrNotFound)
	}
	found := false
	for _, r := range svc.regions {
		found = found || r == o.Region
	}
	if !found {
		return fmt.Errorf("region %q is not a candidate of %s: %w", o.Region, svc.name, ErrNotFound)
	}
	switch o.Mode {
	case "in", "out", "clear":
	default:
		return fmt.Errorf("mode %q is not one of in, out, clear", o.Mode)
	}
	if strings.TrimSpace(o.Reason) == "" {
		return errors.New("a reason is required")
	}
	o.At = time.Now().UTC()
	if err := s.audit.write(auditRecord{At: o.At, Event: "dns.override", Service: svc.name, Region: o.Region, Mode: o.Mode, Reason: o.Reason, By: o.By}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if o.Mode == "clear" {
		delete(svc.overrides, o.Region)
	} else {
		svc.overrides[o.Region] = o
	}
	s.metrics.overrides.WithLabelValues(svc.name, o.Mode).Inc()
	s.log.Warn("dns override", "service", svc.name, "region", o.Region, "mode", o.Mode, "reason", o.Reason, "by", o.By)
	s.applyLocked(svc, fmt.Sprintf("override %s %s by %s: %s", o.Region, o.Mode, o.By, o.Reason))
	return nil
}

// Routes registers the DNS admin API on mux, each route behind the role
// it needs; the caller authenticates (adminauth.Guard).
//
//	POST   /admin/dns/edges/{node}/drain        an edge announces its drain (operate)
//	DELETE /admin/dns/edges/{node}/drain        … and its end (operate)
//	POST   /admin/dns/services/{name}/override  {"region","mode":"in|out|clear","reason"} (operate)
//	GET    /admin/dns/status                    the DNS part of /status (read)
func (s *Server) Routes(mux *http.ServeMux) {
	drain := func(on bool) http.Handler {
		return adminauth.RequireFunc(configs.RoleOperate, func(w http.ResponseWriter, r *http.Request) {
			node := r.PathValue("node")
			if err := s.SetEdgeDraining(node, on, "drain announced by "+node+" ("+caller(r)+")"); err != nil {
				adminauth.WriteProblem(w, r, problem.NotFound, err.Error())
				return
			}
			adminauth.WriteJSON(w, http.StatusOK, map[string]any{"node": node, "draining": on})
		})
	}
	mux.Handle("POST /admin/dns/edges/{node}/drain", drain(true))
	mux.Handle("DELETE /admin/dns/edges/{node}/drain", drain(false))
	mux.Handle("POST /admin/dns/services/{name}/override", adminauth.RequireFunc(configs.RoleOperate, func(w http.ResponseWriter, r *http.Request) {
		var o Override
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			adminauth.WriteProblem(w, r, problem.BadRequest, `the body is not an override: {"region", "mode": "in", "out" or "clear", "reason"}`)
			return
		}
		o.By = caller(r)
		if err := s.Override(r.PathValue("name"), o); err != nil {
			// Bodies never carry internal error text: what the request got
			// wrong (Override checks it before anything else) is said in
			// Override's words; anything else is logged.
			switch {
			case errors.Is(err, ErrNotFound):
				adminauth.WriteProblem(w, r, problem.NotFound, err.Error())
			case o.Mode != "in" && o.Mode != "out" && o.Mode != "clear", strings.TrimSpace(o.Reason) == "":
				adminauth.WriteProblem(w, r, problem.UnprocessableInput, err.Error())
			default:
				s.log.Error("dns override failed", "service", r.PathValue("name"), "error", err)
				adminauth.WriteProblem(w, r, problem.Internal, "")
			}
			return
		}
		adminauth.WriteJSON(w, http.StatusOK, s.Status())
	}))
	mux.Handle("GET /admin/dns/status", adminauth.RequireFunc(configs.RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		adminauth.WriteJSON(w, http.StatusOK, s.Status())
	}))
}

// caller names who made an admin request (the admin token's name, never
// the token) and from where, for logs and the audit file.
func caller(r *http.Request) string {
	id, _ := adminauth.From(r.Context())
	return id.Name + " from " + r.RemoteAddr
}

// PushDrain tells the DNS server behind adminURL (http(s)://host:port)
// that node starts (or stops) draining; client carries the TLS settings
// (adminauth.Pusher) and token, when not empty, is sent as a bearer token.
func PushDrain(ctx context.Context, client *http.Client, adminURL, token, node string, draining bool) error {
	method := http.MethodPost
	if !draining {
		method = http.MethodDelete
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(adminURL, "/")+"/admin/dns/edges/"+node+"/drain", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, req.URL, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// DNSNodes lists the admin addresses of the nodes that serve DNS, the
// targets of a drain push.
func DNSNodes(cfg *configs.Config) map[string]string {
	out := map[string]string{}
	for _, n := range DNSNodeList(cfg) {
		out[n.Name] = n.Admin.Address
	}
	return out
}

// DNSNodeList lists the nodes that serve DNS and have an admin listener,
// in configuration order.
func DNSNodeList(cfg *configs.Config) []*configs.Node {
	var out []*configs.Node
	for i := range cfg.Regions {
		for j := range cfg.Regions[i].Nodes {
			if n := &cfg.Regions[i].Nodes[j]; n.DNS.Address != "" && n.Admin.Address != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// auditRecord is one line of the DNS audit log.
type auditRecord struct {
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
	Service string    `json:"service"`
	Region  string    `json:"region"`
	Mode    string    `json:"mode"`
	Reason  string    `json:"reason"`
	By      string    `json:"by"`
}

// auditLog appends JSON lines and syncs each before the change applies.
type auditLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func auditPath(cfg *configs.Config) string {
	if cfg.DNS.AuditFile != "" {
		return cfg.DNS.AuditFile
	}
	return filepath.Join(cfg.DataDir, "audit", "dns.jsonl")
}

func newAuditLog(path string) *auditLog { return &auditLog{path: path} }

func (a *auditLog) write(rec auditRecord) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		if err := os.MkdirAll(filepath.Dir(a.path), 0o750); err != nil {
			return err
		}
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return err
		}
		a.f = f
	}
	if _, err := a.f.Write(append(line, '\n')); err != nil {
		return err
	}
	return a.f.Sync()
}

func (a *auditLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
}
