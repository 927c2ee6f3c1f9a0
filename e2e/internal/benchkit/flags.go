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
