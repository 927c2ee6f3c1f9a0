package configs

import (
	"strings"
	"testing"
)

// demoValidator is a validator of the demo, reporting to errs (file x, no
// lines known: every problem on line 1).
func demoValidator(t *testing.T) (c *Config, v *validator, errs *Errors) {
	t.Helper()
	c = demo(t)
	errs = &Errors{file: "x"}
	return c, newValidator(c, errs, map[string]int{}, map[string]bool{}), errs
}

// demo is the embedded demo configuration, parsed, defaulted and valid.
func demo(t *testing.T) *Config {
	t.Helper()
	c, err := Demo()
	if err != nil {
		t.Fatalf("embedded demo does not validate:\n%v", err)
	}
	return c
}

// wantProblems fails the test unless err reports every line of want.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want problems, got none; expected:\n  %s", strings.Join(want, "\n  "))
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

// The validator names a field from its address: the path the decoder gives
// it, from the same yaml tags, however deep, whether the file wrote it or
// not, and told apart from the struct it opens (the same address).
func TestValidatorPaths(t *testing.T) {
	c, v, _ := demoValidator(t)
	l := &c.Regions[1].Nodes[0].Listeners[0]
	for _, f := range []struct {
		field any
		want  string
	}{
		{c, ""},
		{&c.Auth, "auth"},
		{&c.Auth.JWT, "auth.jwt"},
		{&c.Auth.JWT.Issuer, "auth.jwt.issuer"},
		{l, "regions[1].nodes[0].listeners[0]"},
		{&l.Name, "regions[1].nodes[0].listeners[0].name"},
		{&l.TLS.Mode, "regions[1].nodes[0].listeners[0].tls.mode"},
		{&l.Limits.MaxArgs, "regions[1].nodes[0].listeners[0].limits.max_args"},
		{l.HSTS.Enabled, "regions[1].nodes[0].listeners[0].hsts.enabled"},
		{&c.Admin.Tokens[1].Roles[0], "admin.tokens[1].roles[0]"},
		{&c.Streams.PerAddress.Rate, "streams.per_address.rate"},
		{&c.Regions[0].Pools[0].Retries.Budget, "regions[0].pools[0].retries.budget"},
		{&c.DNS.Zones[0].Services[0].Health.Timeout, "dns.zones[0].services[0].health.timeout"},
	} {
		if got := v.path(f.field); got != f.want {
			t.Errorf("path of a %T: expected %q, got %q", f.field, f.want, got)
		}
	}
}

// A check given a copy of part of the configuration, not the part itself,
// would name no field: it stops at once, so every test reaching it fails.
func TestValidatorRefusesCopies(t *testing.T) {
	c, v, _ := demoValidator(t)
	copied := c.Regions[0].Nodes[0].Listeners[0]
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "not part of the configuration") {
			t.Fatalf("a check on a copy: expected a panic naming the mistake, got %v", r)
		}
	}()
	v.bad(&copied.Address, "x")
}

// An enum's error lists the values of its type, in their order.
func TestEnumErrorsListValues(t *testing.T) {
	c, v, errs := demoValidator(t)
	c.Routes[0].Kind = "grpc"
	c.Regions[0].Pools[0].Policy = "random"
	c.Log.Level = "trace"
	if oneOf(v, &c.Routes[0].Kind) || oneOf(v, &c.Regions[0].Pools[0].Policy) || oneOf(v, &c.Log.Level) || !oneOf(v, &c.Log.Format) {
		t.Fatal("oneOf: expected false for the three bad values and true for the good one")
	}
	want := []string{
		`x:1: routes[0].kind: "grpc" is not one of proxy, ledger, stream`,
		`x:1: regions[0].pools[0].policy: "random" is not one of round_robin, failover`,
		`x:1: log.level: "trace" is not one of debug, info, warn, error`,
	}
	if got := errs.Error(); got != strings.Join(want, "\n") {
		t.Errorf("expected:\n%s\ngot:\n%s", strings.Join(want, "\n"), got)
	}
}
