// Package ledger knows the designated writer of every ledger domain: one
// (region, URL, epoch) at a time, from the configuration, from probing the
// candidates' role endpoints (the highest epoch claiming the writer role
// wins; two at one epoch is ambiguity), or from an operator promotion.
// Money routes ask it on every call and fail closed unless the answer is a
// single designated writer.
package ledger

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"hedge/configs"
	"hedge/internal/fetch"
	"hedge/internal/tick"
)

// Writer is one ledger writer of a domain.
type Writer struct {
	Domain string `json:"domain"`
	Region string `json:"region"`
	URL    string `json:"url"`
	Epoch  int64  `json:"epoch"`
}

// State of a domain's designation.
type State string

// Only Designated lets money calls through.
const (
	Designated  State = "designated"
	Unknown     State = "unknown"     // no candidate claims the writer role
	Ambiguous   State = "ambiguous"   // two candidates claim it at the highest epoch
	Unreachable State = "unreachable" // the designated writer stopped answering
)

// Designation is a domain's current answer. It is immutable: a change makes
// a new one.
type Designation struct {
	Domain string    `json:"domain"`
	State  State     `json:"state"`
	Writer Writer    `json:"writer,omitzero"`
	Source string    `json:"source"` // config | probe | promotion
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// OK reports whether money calls may go to d.Writer.
func (d *Designation) OK() bool { return d != nil && d.State == Designated }

type candidate struct {
	Writer
	// token is the writer's admin token (writers[].admin_token_file),
	// presented when a promotion is carried out at the writer.
	token string
	// probe results, owned by the probe loop
	reachable bool
	role      string
	epoch     int64
	domain    string
	fails     int
	lastErr   string
}

type domainState struct {
	name       string
	cur        atomic.Pointer[Designation]
	candidates []*candidate
	promoted   *Writer // operator's designation; a higher probed epoch still wins
	// fence is the highest epoch ever designated for the domain. A writer
	// below it is stale whatever it claims: if the writer at the fence stops
	// answering, the domain has no writer (fail closed) rather than falling
	// back to an older one.
	fence int64
}

// Directory holds the designations of every domain of the deployment.
type Directory struct {
	probe    configs.WriterProbe
	domains  map[string]*domainState
	order    []string
	onChange func(old, cur Designation)
	client   *http.Client
	// admin reaches writers' admin APIs: the probes' transport, without
	// their short timeout (the caller's context bounds each call).
	admin *http.Client

	mu     sync.Mutex // serialises recomputation and promotion
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Option adjusts how New builds a Directory.
type Option func(*http.Transport)

// ProbeTLS is how the role probes reach writers with https:// URLs: the
// CA that verifies them and the edge's client certificate
// (ledger.writer_tls, built by upstream.ClientTLS).
func ProbeTLS(c *tls.Config) Option {
	return func(t *http.Transport) { t.TLSClientConfig = c }
}

// New builds the directory from the configured writers. onChange hears
// every change of a designation (for logs, metrics and audit).
func New(cfg *configs.Config, onChange func(old, cur Designation), opts ...Option) *Directory {
	tr := &http.Transport{DisableKeepAlives: true}
	for _, o := range opts {
		o(tr)
	}
	d := &Directory{probe: cfg.Ledger.Probe, domains: map[string]*domainState{}, onChange: onChange,
		client: &http.Client{Timeout: cfg.Ledger.Probe.Timeout.D(), Transport: tr}, admin: &http.Client{Transport: tr}}
	for _, r := range cfg.Regions {
		for _, w := range r.Writers {
			ds := d.domains[w.Domain]
			if ds == nil {
				ds = &domainState{name: w.Domain}
				d.domains[w.Domain] = ds
				d.order = append(d.order, w.Domain)
			}
			ds.candidates = append(ds.candidates, &candidate{Writer: Writer{Domain: w.Domain, Region: r.Name, URL: w.URL, Epoch: w.Epoch}, token: w.AdminToken})
		}
	}
	sort.Strings(d.order)
	for _, ds := range d.domains {
		des := ds.fromConfig()
		ds.fence = des.Writer.Epoch
		ds.cur.Store(des)
	}
	return d
}

// fromConfig designates the highest configured epoch (validation makes it
// unique).
func (ds *domainState) fromConfig() *Designation {
	best := ds.candidates[0]
	for _, c := range ds.candidates[1:] {
		if c.Epoch > best.Epoch {
			best = c
		}
	}
	return &Designation{Domain: ds.name, State: Designated, Writer: best.Writer, Source: "config",
		Reason: "highest configured epoch", Since: time.Now()}
}

// Lookup returns the current designation of domain, or nil when the
// deployment has no such domain. It is safe on every request.
func (d *Directory) Lookup(domain string) *Designation {
	if ds := d.domains[domain]; ds != nil {
		return ds.cur.Load()
	}
	return nil
}

// Inherit keeps the designations and probe results of the directory this
// one replaces on reload, for the domains and candidates both know.
func (d *Directory) Inherit(old *Directory) {
	for name, ds := range d.domains {
		ods := old.domains[name]
		if ods == nil {
			continue
		}
		old.mu.Lock()
		for _, c := range ds.candidates {
			for _, oc := range ods.candidates {
				if oc.URL == c.URL {
					c.reachable, c.role, c.epoch, c.domain, c.fails, c.lastErr = oc.reachable, oc.role, oc.epoch, oc.domain, oc.fails, oc.lastErr
				}
			}
		}
		ds.promoted = ods.promoted
		ds.fence = max(ds.fence, ods.fence)
		old.mu.Unlock()
		// What probes or operators established outlives a reload, unless
		// the new configuration names a higher epoch or drops the writer.
		prev, fresh := ods.cur.Load(), ds.cur.Load()
		if prev.Source != "config" && (!prev.OK() || prev.Writer.Epoch >= fresh.Writer.Epoch && hasCandidate(ds, prev.Writer.URL)) {
			ds.cur.Store(prev)
		} else if d.onChange != nil && (prev.State != fresh.State || prev.Writer != fresh.Writer) {
			d.onChange(*prev, *fresh) // the new configuration designates another writer
		}
	}
}

// Start probes the candidates when probing is enabled: one round at once
// (so a starting node knows its writers), then every interval until Close.
func (d *Directory) Start(ctx context.Context) {
	if !d.probe.Enabled || len(d.domains) == 0 {
		return
	}
	d.round(ctx)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		tick.Every(ctx.Done(), d.probe.Interval.D(), func(time.Time) { d.round(ctx) })
	}()
}

// Close stops probing; safe to call twice.
func (d *Directory) Close() {
	d.once.Do(func() {
		if d.cancel != nil {
			d.cancel()
		}
		d.wg.Wait()
	})
}

type roleAnswer struct {
	Role   string `json:"role"`
	Domain string `json:"domain"`
	Epoch  int64  `json:"epoch"`
}

// round probes every candidate concurrently, then recomputes.
func (d *Directory) round(ctx context.Context) {
	type result struct {
		c   *candidate
		ans roleAnswer
		err error
	}
	var all []*candidate
	for _, name := range d.order {
		all = append(all, d.domains[name].candidates...)
	}
	results := make(chan result, len(all))
	for _, c := range all {
		go func() {
			ans, err := d.ask(ctx, c.URL)
			results <- result{c, ans, err}
		}()
	}
	got := make([]result, 0, len(all))
	for range all {
		got = append(got, <-results)
	}
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range got {
		c := r.c
		if r.err != nil {
			c.fails++
			c.lastErr = r.err.Error()
			if c.fails >= d.probe.Fall {
				c.reachable = false
			}
			continue
		}
		c.fails, c.lastErr, c.reachable = 0, "", true
		c.role, c.epoch, c.domain = r.ans.Role, r.ans.Epoch, r.ans.Domain
	}
	for _, name := range d.order {
		d.recompute(d.domains[name], "probe")
	}
}

func (d *Directory) ask(ctx context.Context, base string) (roleAnswer, error) {
	var ans roleAnswer
	err := fetch.JSON(ctx, d.client, base+d.probe.Path, 64<<10, &ans)
	if se, ok := errors.AsType[*fetch.StatusError](err); ok {
		err = fmt.Errorf("role endpoint answered %d", se.Code)
	}
	return ans, err
}

// recompute derives the designation of ds from its candidates' last probes
// and any promotion; d.mu is held.
func (d *Directory) recompute(ds *domainState, source string) {
	old := ds.cur.Load()
	var top []Writer
	var topEpoch int64 = -1
	consider := func(w Writer) {
		switch {
		case w.Epoch > topEpoch:
			top, topEpoch = []Writer{w}, w.Epoch
		case w.Epoch == topEpoch && !slices.ContainsFunc(top, func(x Writer) bool { return x.URL == w.URL }):
			top = append(top, w)
		}
	}
	for _, c := range ds.candidates {
		// A candidate that stops answering has not stepped down: its last
		// claim stands, and still rivals an equal one, until it answers
		// otherwise.
		if c.role == "writer" && c.domain == ds.name {
			w := c.Writer
			w.Epoch = c.epoch
			consider(w)
		}
	}
	if p := ds.promoted; p != nil {
		consider(*p)
	}
	next := &Designation{Domain: ds.name, Since: time.Now(), Source: source}
	switch {
	case len(top) > 0 && topEpoch < ds.fence:
		// Only writers below the fence answer: they are stale.
		next.State = Unreachable
		next.Reason = fmt.Sprintf("no reachable writer at epoch %d; writers at lower epochs (%d) are fenced", ds.fence, topEpoch)
	case len(top) == 1 && !d.reachable(ds, top[0].URL) && (ds.promoted == nil || *ds.promoted != top[0]):
		next.State = Unreachable
		next.Reason = fmt.Sprintf("the writer claiming epoch %d, %s, does not answer: %s", topEpoch, top[0].URL, d.lastErr(ds, top[0].URL))
	case len(top) == 1:
		next.State, next.Writer = Designated, top[0]
		next.Reason = fmt.Sprintf("highest epoch claiming the writer role: %d", topEpoch)
		if ds.promoted != nil && *ds.promoted == top[0] {
			next.Source, next.Reason = "promotion", "promoted by operators"
		}
	case len(top) > 1:
		next.State = Ambiguous
		next.Reason = fmt.Sprintf("%d writers claim epoch %d", len(top), topEpoch)
	case old.OK() && !d.reachable(ds, old.Writer.URL):
		next.State = Unreachable
		next.Reason = "the designated writer " + old.Writer.URL + " does not answer: " + d.lastErr(ds, old.Writer.URL)
	default:
		next.State = Unknown
		next.Reason = "no reachable candidate claims the writer role"
	}
	if next.OK() {
		ds.fence = max(ds.fence, next.Writer.Epoch)
	}
	if old.State == next.State && old.Writer == next.Writer {
		return
	}
	if old.State == Unreachable && next.State == Unknown {
		return // still no writer: keep saying why
	}
	ds.cur.Store(next)
	if d.onChange != nil {
		d.onChange(*old, *next)
	}
}

func hasCandidate(ds *domainState, url string) bool {
	return slices.ContainsFunc(ds.candidates, func(c *candidate) bool { return c.URL == url })
}

func (d *Directory) reachable(ds *domainState, url string) bool {
	for _, c := range ds.candidates {
		if c.URL == url {
			return c.reachable
		}
	}
	return false
}

func (d *Directory) lastErr(ds *domainState, url string) string {
	for _, c := range ds.candidates {
		if c.URL == url {
			return c.lastErr
		}
	}
	return ""
}

// Promote designates w for its domain on the operators' word. Its epoch
// must be higher than the current writer's, so the old writer is fenced.
func (d *Directory) Promote(w Writer) (Designation, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds := d.domains[w.Domain]
	if ds == nil {
		return Designation{}, fmt.Errorf("no ledger domain %q", w.Domain)
	}
	cur := ds.cur.Load()
	if cur.OK() && cur.Writer.URL == w.URL && cur.Writer.Epoch == w.Epoch {
		// Probes found the promoted writer first: it is the designation.
		w.Region = cur.Writer.Region
		ds.promoted = &w
		return *cur, nil
	}
	if cur.OK() && w.Epoch <= cur.Writer.Epoch {
		return Designation{}, fmt.Errorf("epoch %d is not higher than the current writer's %d", w.Epoch, cur.Writer.Epoch)
	}
	known := false
	for _, c := range ds.candidates {
		if c.URL == w.URL {
			known, w.Region = true, c.Region
		}
	}
	if !known {
		return Designation{}, fmt.Errorf("%s is not a configured writer of domain %q", w.URL, w.Domain)
	}
	ds.promoted = &w
	ds.fence = max(ds.fence, w.Epoch)
	if !d.probe.Enabled {
		// Without probes the promotion is the designation.
		next := &Designation{Domain: w.Domain, State: Designated, Writer: w, Source: "promotion", Reason: "promoted by operators", Since: time.Now()}
		ds.cur.Store(next)
		if d.onChange != nil {
			d.onChange(*cur, *next)
		}
		return *next, nil
	}
	d.recompute(ds, "promotion")
	return *ds.cur.Load(), nil
}

// CandidateStatus is one writer candidate as last probed.
type CandidateStatus struct {
	Writer
	Reachable bool   `json:"reachable"`
	Role      string `json:"role,omitempty"`
	Reported  int64  `json:"reported_epoch,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// DomainStatus is a domain's designation and candidates, for /status.
type DomainStatus struct {
	Designation Designation       `json:"designation"`
	Candidates  []CandidateStatus `json:"candidates"`
}

// Status reports every domain.
func (d *Directory) Status() []DomainStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DomainStatus, 0, len(d.order))
	for _, name := range d.order {
		ds := d.domains[name]
		st := DomainStatus{Designation: *ds.cur.Load()}
		for _, c := range ds.candidates {
			st.Candidates = append(st.Candidates, CandidateStatus{Writer: c.Writer, Reachable: c.reachable, Role: c.role, Reported: c.epoch, LastError: c.lastErr})
		}
		out = append(out, st)
	}
	return out
}

// PromoteAt carries a promotion out at the writer itself: POST
// /admin/promote {"epoch": N} on w's admin API, with the writer's admin
// token, over the writers' TLS. The writer's epoch is the truth every
// node's probes read, so this is what makes a promotion reach every node
// of every region, and fences the old writer at the ledger. A writer that
// already writes at exactly that epoch answers as done.
func (d *Directory) PromoteAt(ctx context.Context, w Writer) error {
	ds := d.domains[w.Domain]
	if ds == nil {
		return fmt.Errorf("no ledger domain %q", w.Domain)
	}
	var c *candidate
	for _, x := range ds.candidates {
		if x.URL == w.URL {
			c = x
		}
	}
	if c == nil {
		return fmt.Errorf("%s is not a configured writer of domain %q", w.URL, w.Domain)
	}
	status, b, err := fetch.PostJSON(ctx, d.admin, w.URL+"/admin/promote", c.token, map[string]int64{"epoch": w.Epoch}, 64<<10)
	if err != nil {
		return &PromoteError{Writer: w.URL, Err: err}
	}
	var ans struct {
		roleAnswer
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &ans)
	if status != http.StatusOK {
		return &PromoteError{Writer: w.URL, Status: status, Problem: ans.Type}
	}
	if ans.Role != "writer" || ans.Epoch != w.Epoch || (ans.Domain != "" && ans.Domain != w.Domain) {
		return &PromoteError{Writer: w.URL, Status: status,
			Err: fmt.Errorf("it reports %s of %q at epoch %d", ans.Role, ans.Domain, ans.Epoch)}
	}
	return nil
}

// PromoteError is a writer that did not take a promotion: unreachable
// (Err), refused (Status and Problem, its problem type), or answering
// with another role or epoch.
type PromoteError struct {
	Writer  string
	Status  int
	Problem string
	Err     error
}

func (e *PromoteError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("writer %s unreachable: %v", e.Writer, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("writer %s did not take the promotion: %v", e.Writer, e.Err)
	}
	return fmt.Sprintf("writer %s refused the promotion: %d %s", e.Writer, e.Status, e.Problem)
}

func (e *PromoteError) Unwrap() error { return e.Err }
