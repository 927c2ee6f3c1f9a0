package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"hedge/internal/fetch"
)

// Scenario is one fault the drill rehearses.
type Scenario struct {
	Name        string
	Description string
	// Standby: the fault takes a domain's writer away, so its replica
	// must be promoted (needs a ledger simulator that replicates).
	Standby bool
	// LosesRegion: DNS should stop naming the first region's edges.
	LosesRegion bool
	inject      func(r *run) error
}

// Scenarios are every scenario, in the order `hedge drill` runs them.
var Scenarios = []Scenario{
	{Name: "region-down", Description: "SIGKILL every process of the first region, its writer included", Standby: true, LosesRegion: true,
		inject: func(r *run) error { return r.kill(r.lostRegion(), "", syscall.SIGKILL) }},
	{Name: "partition", Description: "cut the first region's WAN link while its processes keep running (split brain)", Standby: true, LosesRegion: true,
		inject: func(r *run) error { return r.d.topo.Cut(r.lostRegion()) }},
	{Name: "writer-crash", Description: "SIGKILL the first domain's writer only", Standby: true,
		inject: func(r *run) error {
			p := r.d.procs.byName(r.lostDomain() + "-writer")
			return p.signal(syscall.SIGKILL)
		}},
	{Name: "edge-crash", Description: "SIGKILL one edge node of the first region",
		inject: func(r *run) error { return r.d.procs.find(r.lostRegion(), KindEdge)[0].signal(syscall.SIGKILL) }},
	{Name: "drain", Description: "planned: SIGTERM every edge of the first region (health red, DNS push, then stop)", LosesRegion: true,
		inject: func(r *run) error { return r.kill(r.lostRegion(), KindEdge, syscall.SIGTERM) }},
	{Name: "dns-loss", Description: "SIGKILL the first region's DNS server",
		inject: func(r *run) error { return r.kill(r.lostRegion(), KindDNS, syscall.SIGKILL) }},
}

// ScenarioByName finds a scenario.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func (r *run) lostRegion() string { return r.d.cfg.Regions[0].Name }
func (r *run) lostDomain() string { return r.d.cfg.Regions[0].Name }

func (r *run) kill(region, kind string, sig syscall.Signal) error {
	var errs []error
	for _, p := range r.d.procs.find(region, kind) {
		errs = append(errs, p.signal(sig))
	}
	return errors.Join(errs...)
}

// Step is one timed action of the promotion, seconds after the fault.
type Step struct {
	What string  `json:"what"`
	At   float64 `json:"at_s"`
	Took float64 `json:"took_s,omitempty"`
	Err  string  `json:"error,omitempty"`
}

// fourEyes is two scripted operators promoting the lost domain's replica
// through a surviving edge's admin API: alice requests once the writer has
// been silent for operator_reaction, bob approves at once.
func (r *run) fourEyes(stop <-chan struct{}) {
	dom := r.lostDomain()
	var writer, replica ledger
	for _, l := range r.d.ledgers {
		if l.Domain == dom && l.Writer {
			writer = l
		} else if l.Domain == dom {
			replica = l
		}
	}
	var silentSince time.Time
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		s := r.mon.latest()
		if _, ok := s.Roles[writer.Name]; ok {
			silentSince = time.Time{}
			continue
		}
		if silentSince.IsZero() {
			silentSince = s.At
		}
		if time.Since(silentSince) >= r.d.cfg.OperatorReaction {
			break
		}
	}
	r.step("operators see the writer silent", time.Now(), 0, nil)
	epoch := int64(2)
	if ra, ok := r.mon.latest().Roles[replica.Name]; ok {
		epoch = ra.Epoch + 1
	}
	var admin node
	for _, e := range r.d.edges {
		if e.Region != writer.Region {
			admin = e
			break
		}
	}
	base := "https://" + net.JoinHostPort(admin.IP, fmt.Sprint(portAdmin))
	request := map[string]any{"domain": dom, "url": replica.URL, "epoch": epoch, "reason": "drill: " + r.sc.Name}
	t0 := time.Now()
	var pr struct {
		ID string `json:"id"`
	}
	err := r.adminCall(base+"/admin/ledger/promotions", r.d.tokens.Alice, request, http.StatusAccepted, &pr)
	r.step("alice requests the promotion on "+admin.Name, t0, time.Since(t0), err)
	if err != nil {
		return
	}
	t1 := time.Now()
	err = r.adminCall(base+"/admin/ledger/promotions/"+pr.ID+"/approve", r.d.tokens.Bob, nil, http.StatusOK, nil)
	r.step("bob approves", t1, time.Since(t1), err)
	if err == nil {
		r.mu.Lock()
		r.approvedAt = time.Now()
		r.mu.Unlock()
	}
}

func (r *run) step(what string, at time.Time, took time.Duration, err error) {
	s := Step{What: what, At: at.Sub(r.fault).Seconds(), Took: took.Seconds()}
	if err != nil {
		s.Err = err.Error()
	}
	r.mu.Lock()
	r.steps = append(r.steps, s)
	r.mu.Unlock()
}

// adminCall posts in as JSON to an admin API's url with token and decodes
// the answer into out (unless nil); an answer other than want fails with
// its body.
func (r *run) adminCall(url, token string, in any, want int, out any) error {
	code, b, err := fetch.PostJSON(context.Background(), r.d.http, url, token, in, 8192)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("%s answered %d: %s", url, code, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
