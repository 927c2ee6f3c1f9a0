package configs

import (
	"os"
	"strings"
	"time"
)

// validate checks writer probes, promotions, degradation and the writers' TLS.
func (l *Ledger) validate(v *validator) {
	pr := &l.Probe
	v.slash(&pr.Path)
	positive(v, &pr.Interval)
	positive(v, &pr.Timeout)
	atLeast(v, &pr.Fall, 1)
	positive(v, &l.Promotion.Window)
	dg := &l.Degradation
	if dg.ErrorRate <= 0 || dg.ErrorRate > 1 {
		v.bad(&dg.ErrorRate, "must be a share above 0 and at most 1, got %g", dg.ErrorRate)
	}
	positive(v, &dg.LatencyP95)
	atLeast(v, &dg.MinRequests, 1)
	positive(v, &dg.Window)
	positive(v, &dg.RecoverAfter)
	l.WriterTLS.validate(v)
}

// validate checks a region's Idempotency-Key store.
func (id *Idempotency) validate(v *validator) {
	if !oneOf(v, &id.Store) {
		return
	}
	positive(v, &id.Retention)
	atLeast(v, &id.MaxEntries, 64)
	positive(v, &id.MaxResponseBytes)
	if id.Store == StoreRedis {
		v.address(&id.Redis.Address)
		v.readableIfSet(&id.Redis.PasswordFile)
		// Renewed every third of it: below 300ms a busy node could miss
		// it; above 30s (the shortest in-flight claim) it would not help.
		if l := id.Redis.Liveness; l < Duration(300*time.Millisecond) || l > Duration(30*time.Second) {
			v.bad(&id.Redis.Liveness, "must be 300ms to 30s, got %s", l.D())
		}
	}
}

// validateWriters enforces one designated writer per ledger domain: of the
// static candidates, the highest epoch must be unique.
func (c *Config) validateWriters(v *validator) {
	type top struct {
		epoch   int64
		writers []*Writer
	}
	best := map[string]*top{}
	var order []string
	for i := range c.Regions {
		for j := range c.Regions[i].Writers {
			w := &c.Regions[i].Writers[j]
			t := best[w.Domain]
			switch {
			case t == nil:
				best[w.Domain] = &top{w.Epoch, []*Writer{w}}
				order = append(order, w.Domain)
			case w.Epoch > t.epoch:
				*t = top{w.Epoch, []*Writer{w}}
			case w.Epoch == t.epoch:
				t.writers = append(t.writers, w)
			}
		}
	}
	for _, d := range order {
		if t := best[d]; len(t.writers) > 1 {
			v.bad(&t.writers[1].Epoch, "ledger domain %q has two writers at epoch %d (also %s): exactly one may be designated", d, t.epoch, v.path(t.writers[0]))
		}
	}
}

// validate checks the development stand-ins `hedge serve` runs.
func (d *Dev) validate(v *validator) {
	for i := range d.Ledgers {
		l := &d.Ledgers[i]
		v.address(&l.Address)
		v.name(&l.Domain)
		oneOf(v, &l.Role)
	}
	for i := range d.Rails {
		r := &d.Rails[i]
		v.name(&r.Name)
		v.address(&r.Address)
	}
}

// validateAdminToken reads the writer's admin token file, when one is
// named: the token an approved promotion presents to the writer.
func (w *Writer) validateAdminToken(v *validator) {
	if w.AdminTokenFile == "" {
		return
	}
	b, err := os.ReadFile(w.AdminTokenFile)
	if err != nil {
		v.bad(&w.AdminTokenFile, "cannot read %s: %v", w.AdminTokenFile, unwrapPathError(err))
		return
	}
	w.AdminToken = strings.TrimSpace(string(b))
	switch {
	case w.AdminToken == "":
		v.bad(&w.AdminTokenFile, "%s is empty", w.AdminTokenFile)
	case !bearerRE.MatchString(w.AdminToken):
		v.bad(&w.AdminTokenFile, "a bearer token is letters, digits and -._~+/ (e.g. the output of openssl rand -hex 32)")
	}
}
