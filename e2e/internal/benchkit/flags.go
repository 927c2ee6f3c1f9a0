package benchkit

import "flag"

// Placement is where a harness runs its parts and writes its reports, the
// flags every harness that compares servers has: -load-cpu (what
// generates load and serves as upstream), -server-cpu (the server under
// test) and -out (the reports' directory).
type Placement struct {
	LoadCPU, ServerCPU int
	Out                string
}

// Flags defines -load-cpu, -server-cpu and -out on the command line's flag
// set; the usages say what runs on each CPU and which reports go out.
func (p *Placement) Flags(load, server, reports string) {
	flag.IntVar(&p.LoadCPU, "load-cpu", 0, "`cpu` for "+load)
	flag.IntVar(&p.ServerCPU, "server-cpu", 1, "`cpu` for "+server)
	flag.StringVar(&p.Out, "out", "e2e/bench/results", "`dir`ectory for "+reports)
}

// Check fails unless -load-cpu and -server-cpu are two different CPUs of
// this machine (DistinctCPUs).
func (p *Placement) Check() error {
	return DistinctCPUs("-load-cpu", p.LoadCPU, "-server-cpu", p.ServerCPU)
}

// Role is a part a harness re-executes itself as (its upstream, its load
// generator), chosen by an internal flag whose value is the role's
// argument.
type Role struct {
	name string
	arg  *string
	run  func(arg string) error
}

// NewRole defines the internal flag -name on the command line's flag set;
// given, the process runs run(value) instead of the harness.
func NewRole(name, usage string, run func(arg string) error) Role {
	return Role{name, flag.String(name, "", usage), run}
}

// Upstream is the role StartUpstream starts: `self -upstream ADDR` serves
// the harness's upstream on ADDR.
func Upstream(serve func(addr string) error) Role {
	return NewRole("upstream", "internal: serve as the upstream on `addr`", serve)
}

// Main parses the command line and runs the role whose flag was given, or
// else the harness (main); an error ends the process with status 1, named
// after the role or the harness.
func Main(harness string, main func() error, roles ...Role) {
	flag.Parse()
	for _, r := range roles {
		if *r.arg != "" {
			ExitOnError(r.name+":", r.run(*r.arg))
			return
		}
	}
	ExitOnError(harness+":", main())
}
