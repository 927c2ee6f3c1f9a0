// Command hedge is an active-active regional edge gateway for real-money
// live gaming. See README.md.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hedge/configs"
	"hedge/dnsfail"
	"hedge/drill"
	"hedge/gateway"
	"hedge/gateway/jwtauth"
	"hedge/gateway/loadgen"
	"hedge/internal/adminauth"
	"hedge/internal/certs"
	"hedge/internal/problem"
	"hedge/internal/sim"
	"hedge/waf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `hedge — active-active edge gateway for real-money live gaming

Usage:
  hedge serve [-c FILE] [-region NAME] [-node NAME]   run edge node(s); no -c runs the embedded demo
  hedge check -c FILE                                 validate a configuration (exit 0 valid, 2 invalid)
  hedge token -sub PLAYER [-domain D] [-ttl 1h] [-c FILE]   print a player token signed with the configured key
  hedge dns [-c FILE] [-node NAME] [-admin ADDR]      serve the authoritative DNS alone (no -c: the demo)
  hedge dnssec keygen|ds -c FILE [-zone NAME]         make DNSSEC keys in the data directory / print DS for the parent
  hedge ledgersim [flags]                             run the ledger simulator (development wallet)
  hedge loadgen [-c FILE] [-count N] [-verify FILE]   vegeta targets for money routes (make load); -verify checks a run
  hedge drill [-c FILE] [-scenario LIST] [--loopback]   rehearse a region loss with every node its own process
  hedge waf suggest [-c FILE|-data DIR|-file F] [-o DIR]  per learn route: a JSON schema and field exclusions, with counts
  hedge version                                       print the version

Run 'hedge COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		code = serve(args)
	case "check":
		code = check(args, os.Stdout, os.Stderr)
	case "dns":
		code = serveDNS(args)
	case "dnssec":
		code = dnssecCmd(args, os.Stdout, os.Stderr)
	case "ledgersim":
		code = ledgersim(args)
	case "loadgen":
		code = loadgenCmd(args, os.Stdin, os.Stdout, os.Stderr)
	case "token":
		code = token(args, os.Stdout, os.Stderr)
	case "drill":
		code = drillCmd(args, os.Stdout, os.Stderr)
	case "waf":
		code = wafCmd(args, os.Stdout, os.Stderr)
	case "version", "-version", "--version":
		fmt.Println("hedge", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "hedge: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

// loadConfig reads FILE, or the embedded demo when file is empty.
func loadConfig(file string) (*configs.Config, error) {
	if file == "" {
		return configs.Demo()
	}
	return configs.Load(file)
}

// setup loads the configuration (reporting every problem on stderr) and
// installs the logger it configures.
func setup(file string) (*configs.Config, *slog.Logger, bool) {
	cfg, err := loadConfig(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, nil, false
	}
	log := newLogger(cfg.Log, os.Stderr)
	slog.SetDefault(log)
	return cfg, log, true
}

// nodeFlags are the flags of the subcommands that run a node: the
// configuration file (-c) and the node it plays (-node).
type nodeFlags struct {
	*flag.FlagSet
	file, node *string
}

func newNodeFlags(name, fileUsage, nodeUsage string) nodeFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return nodeFlags{fs, fs.String("c", "", fileUsage), fs.String("node", "", nodeUsage)}
}

// load parses args and sets the configuration up; false means exit 2.
func (f nodeFlags) load(args []string) (*configs.Config, *slog.Logger, bool) {
	if f.Parse(args) != nil {
		return nil, nil, false
	}
	return setup(*f.file)
}

func serve(args []string) int {
	fs := newNodeFlags("serve", "configuration `file` (default: the embedded two-region demo)",
		"node this process plays (default: the region's only node, or all)")
	region := fs.String("region", "", "region this node plays (default: every region in the file)")
	cfg, log, ok := fs.load(args)
	if !ok {
		return 2
	}
	file, node := fs.file, fs.node
	if *file == "" {
		log.Info("no -c given: running the embedded two-region demo (configs/demo.yaml)")
	}
	if usesInternalCA(cfg) {
		root, err := certs.InternalRoot(cfg.DataDir, configs.InternalCANames(cfg)...)
		if err != nil {
			log.Error("internal CA", "error", err)
			return 1
		}
		abs, _ := filepath.Abs(root)
		log.Info("internal CA root certificate (trust it in clients, e.g. curl --cacert)", "path", abs)
	}
	// The development stand-ins the configuration asks for (the demo's
	// ledger simulators and payment rails) serve before the edges that
	// probe them, and stop after them.
	dev, err := sim.StartDev(cfg.Dev, log)
	if err != nil {
		log.Error("development stand-ins", "error", err)
		return 1
	}
	defer dev.Close()
	g, err := gateway.New(cfg, gateway.Options{
		Region: *region, Node: *node, Logger: log, Version: version,
		Reload: func() (*configs.Config, error) { return loadConfig(*file) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hedge:", err)
		return 2
	}
	// Signals are taken from here on: a SIGTERM while certificates are
	// still being obtained cancels the start, a SIGHUP waits for it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- g.Start(ctx) }()
	reloadPending := false
	for waiting := true; waiting; {
		select {
		case err := <-started:
			cancel()
			if err != nil {
				log.Error("start failed", "error", err)
				return 1
			}
			waiting = false
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reloadPending = true
				continue
			}
			log.Info("signal received while starting: stopping", "signal", sig.String())
			cancel()
			if err := <-started; err == nil {
				g.Shutdown(context.Background())
			}
			return 0
		}
	}
	if reloadPending {
		sigs <- syscall.SIGHUP
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("SIGHUP: reloading configuration")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			g.Reload(ctx) // logged; a rejected reload keeps the old configuration
			cancel()
			continue
		}
		log.Info("signal received: draining", "signal", sig.String())
		signal.Stop(sigs)
		// A second signal during the drain ends the process at once.
		go func() {
			again := make(chan os.Signal, 1)
			signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
			<-again
			log.Warn("second signal: exiting without waiting")
			os.Exit(1)
		}()
		g.Shutdown(context.Background())
		return 0
	}
	return 0
}

func usesInternalCA(cfg *configs.Config) bool {
	for _, r := range cfg.Regions {
		for _, n := range r.Nodes {
			for _, l := range n.Listeners {
				if l.TLS.Mode == "internal" {
					return true
				}
			}
		}
	}
	return false
}

func newLogger(c configs.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `file` to check")
	if fs.Parse(args) != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "hedge check: -c FILE is required")
		return 2
	}
	cfg, err := configs.Load(*file)
	if err != nil {
		var ce *configs.Errors
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, ce.Error())
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", *file, ce.Len())
		} else {
			fmt.Fprintln(stderr, "hedge check:", err)
		}
		return 2
	}
	// What only compiling finds: SecLang rule files, JSON schemas.
	if err := waf.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *file, err)
		return 2
	}
	nodes := 0
	for _, r := range cfg.Regions {
		nodes += len(r.Nodes)
	}
	fmt.Fprintf(stdout, "%s: valid (%d regions, %d nodes, %d routes)\n", *file, len(cfg.Regions), nodes, len(cfg.Routes))
	return 0
}

// token prints a bearer token for a test player, signed with the first
// configured key that can sign (the demo's HS256 secret by default).
func token(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `file` whose auth.jwt keys sign (default: the embedded demo)")
	sub := fs.String("sub", "", "the player (token subject)")
	domain := fs.String("domain", "", "ledger `domain` claim (default: none, the edge's region decides)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if fs.Parse(args) != nil {
		return 2
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "hedge token: -sub PLAYER is required")
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	tok, err := jwtauth.Sign(cfg.Auth.JWT, *sub, *domain, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "hedge token:", err)
		return 2
	}
	// A token the edge would refuse (a subject outside the grammar, say)
	// is no use to anyone: say why instead of printing it.
	v, err := jwtauth.New(cfg.Auth.JWT)
	if err == nil {
		_, err = v.Verify([]byte(tok))
	}
	if err != nil {
		fmt.Fprintf(stderr, "hedge token: the edge would refuse this token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// serveDNS runs the authoritative DNS server of one node alone, with its
// admin API (status, drain announcements, overrides, metrics).
func serveDNS(args []string) int {
	fs := newNodeFlags("dns", "configuration `file` (default: the embedded demo)",
		"node whose dns.address to serve (default: the first node that has one)")
	adminAddr := fs.String("admin", "", "admin listener `address` (default: the node's admin.address; \"off\" for none)")
	cfg, log, ok := fs.load(args)
	if !ok {
		return 2
	}
	file, node := fs.file, fs.node
	reg := prometheus.NewRegistry()
	srv, err := dnsfail.New(cfg, dnsfail.Options{Node: *node, Logger: log, Registerer: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hedge dns:", err)
		return 2
	}
	if err := srv.Start(); err != nil {
		log.Error("dns start failed", "error", err)
		return 1
	}
	defer srv.Close()
	// Decoding a large zone leaves garbage behind; give it back at once.
	debug.FreeOSMemory()
	serving := dnsfail.ServingNode(cfg, *node)
	if *adminAddr == "" {
		*adminAddr = dnsfail.DNSNodes(cfg)[serving]
	}
	var admin *dnsAdmin
	if *adminAddr != "" && *adminAddr != "off" {
		mux := http.NewServeMux()
		srv.Routes(mux)
		mux.Handle("GET /metrics", adminauth.Require(configs.RoleRead, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
		mux.Handle("GET /status", adminauth.RequireFunc(configs.RoleRead, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(map[string]any{"version": version, "dns": srv.Status()})
		}))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			adminauth.WriteProblem(w, r, problem.NotFound, "")
		})
		if admin, err = startDNSAdmin(cfg, serving, *adminAddr, mux, log); err != nil {
			log.Error("admin listener", "error", err)
			return 1
		}
		defer admin.close()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Info("signal received: stopping", "signal", sig.String())
			return 0
		}
		// The admin listener's new certificates are made first and put in
		// place only if the DNS server takes the configuration too.
		next, err := loadConfig(*file)
		var adminTLS *adminauth.ServerTLS
		if err == nil && admin != nil {
			adminTLS, err = admin.buildTLS(next)
		}
		if err == nil {
			err = srv.Reload(next)
		}
		if err == nil && admin != nil {
			admin.install(next, adminTLS)
		} else if adminTLS != nil {
			adminTLS.Close()
		}
		if err != nil {
			log.Error("dns reload rejected; the running configuration keeps serving", "error", err)
		} else {
			log.Info("dns configuration reloaded")
		}
	}
	return 0
}

// dnssecCmd makes a signed zone's keys (keygen) or prints its DS records
// for the parent (ds).
func dnssecCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "keygen" && args[0] != "ds" {
		fmt.Fprintln(stderr, "usage: hedge dnssec keygen|ds -c FILE [-zone NAME]")
		return 2
	}
	fs := flag.NewFlagSet("dnssec "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `file` (required)")
	zone := fs.String("zone", "", "only this `zone` (default: every zone with dnssec.enabled)")
	if fs.Parse(args[1:]) != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintf(stderr, "hedge dnssec %s: -c FILE is required\n", args[0])
		return 2
	}
	load, do := configs.Load, dnsfail.PrintDS
	if args[0] == "keygen" {
		load, do = configs.LoadForKeygen, dnsfail.KeyGen
	}
	cfg, err := load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := do(cfg, *zone, stdout); err != nil {
		fmt.Fprintf(stderr, "hedge dnssec %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// dnsAdmin is `hedge dns`'s admin listener: the node's admin settings
// (tokens and roles, TLS, client certificates), taken again on reload.
type dnsAdmin struct {
	node string
	log  *slog.Logger
	cfg  atomic.Pointer[configs.Config]
	tls  atomic.Pointer[adminauth.ServerTLS]
	http *http.Server
}

func startDNSAdmin(cfg *configs.Config, node, addr string, mux *http.ServeMux, log *slog.Logger) (*dnsAdmin, error) {
	a := &dnsAdmin{node: node, log: log}
	a.cfg.Store(cfg)
	st, err := a.buildTLS(cfg)
	if err != nil {
		return nil, err
	}
	a.tls.Store(st)
	ln, err := adminauth.Listen(addr, st != nil, a.tls.Load)
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, err
	}
	a.http = &http.Server{Handler: adminauth.Guard(func() *configs.Admin { return &a.cfg.Load().Admin }, mux),
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go a.http.Serve(ln)
	log.Info("dns admin listener serving", "address", ln.Addr().String(), "tls", st != nil)
	return a, nil
}

func (a *dnsAdmin) buildTLS(cfg *configs.Config) (*adminauth.ServerTLS, error) {
	var nc *configs.Node
	for i := range cfg.Regions {
		for j := range cfg.Regions[i].Nodes {
			if cfg.Regions[i].Nodes[j].Name == a.node {
				nc = &cfg.Regions[i].Nodes[j]
			}
		}
	}
	if nc == nil {
		return nil, fmt.Errorf("no node %q in %s", a.node, cfg.File)
	}
	st, err := adminauth.NewServerTLS(cfg, nc, a.log)
	if err != nil || st == nil {
		return st, err
	}
	// Certificates for the admin listener: internal ones are issued now.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// install takes a reloaded configuration's tokens and the certificates
// buildTLS read for it; the address and whether it serves TLS stay until
// restart.
func (a *dnsAdmin) install(cfg *configs.Config, st *adminauth.ServerTLS) {
	a.cfg.Store(cfg)
	if old := a.tls.Swap(st); old != nil {
		old.Close()
	}
}

func (a *dnsAdmin) close() {
	a.http.Close()
	if st := a.tls.Load(); st != nil {
		st.Close()
	}
}

// loadgenCmd prints vegeta JSON targets (bets, retries, balance reads of
// test players) for `vegeta attack -lazy -format=json`, or with -verify
// compares a run's results with what the ledger simulators applied.
func loadgenCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `file` whose auth.jwt keys sign and whose writers -verify asks (default: the embedded demo)")
	var s loadgen.Settings
	edges := fs.String("edge", "https://play.edge.test:8443", "edge base `URLs` the targets call, comma-separated; each target picks one")
	fs.IntVar(&s.Players, "players", 100, "test players, one token each")
	fs.Float64Var(&s.RetryShare, "retry-share", 0.1, "`share` of targets that retry an earlier bet with its key and body")
	fs.Float64Var(&s.BalanceShare, "balance-share", 0.2, "`share` of targets that read a balance")
	fs.IntVar(&s.Count, "count", 1000, "targets to print; 0 = endless, for vegeta attack -lazy")
	fs.Uint64Var(&s.Seed, "seed", 0, "random `seed` for keys and choices (0: random)")
	fs.StringVar(&s.Amount, "amount", "1.00", "bet `amount`")
	fs.StringVar(&s.Currency, "currency", "EUR", "bet `currency`")
	fs.DurationVar(&s.TokenTTL, "ttl", time.Hour, "how long the players' tokens are valid")
	verify := fs.String("verify", "", "instead: read vegeta's results (`file` from 'vegeta encode -to json', - for stdin) and compare them with the ledgers")
	ledgers := fs.String("ledgers", "", "comma-separated ledger simulator `URLs` for -verify (default: the configuration's writers)")
	if fs.Parse(args) != nil {
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *verify != "" {
		in := stdin
		if *verify != "-" {
			f, err := os.Open(*verify)
			if err != nil {
				fmt.Fprintln(stderr, "hedge loadgen:", err)
				return 2
			}
			defer f.Close()
			in = f
		}
		urls := loadgen.LedgerURLs(cfg)
		if *ledgers != "" {
			urls = strings.Split(*ledgers, ",")
		}
		rep, err := loadgen.Verify(context.Background(), in, urls, nil)
		if err != nil {
			fmt.Fprintln(stderr, "hedge loadgen:", err)
			return 1
		}
		rep.Print(stdout)
		if !rep.OK() {
			return 1
		}
		return 0
	}
	s.Edges = strings.Split(*edges, ",")
	g, err := loadgen.New(cfg, s)
	if err != nil {
		fmt.Fprintln(stderr, "hedge", err)
		return 2
	}
	// vegeta closes the pipe when its attack ends: see EPIPE, not SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	if _, err := g.WriteTo(stdout); err != nil {
		fmt.Fprintln(stderr, "hedge loadgen:", err)
		return 1
	}
	return 0
}

// listFlag is a flag given several times, or once with values separated
// by commas.
type listFlag []string

func (f *listFlag) String() string { return strings.Join(*f, ",") }

func (f *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*f = append(*f, s)
		}
	}
	return nil
}

func ledgersim(args []string) int {
	fs := flag.NewFlagSet("ledgersim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.21:7000", "`address` to serve on")
	domain := fs.String("domain", "sea", "ledger `domain` this writer owns")
	role := fs.String("role", sim.RoleWriter, "`role`: writer or replica")
	epoch := fs.Int64("epoch", 1, "writer `epoch` (fencing token)")
	balance := fs.String("balance", "1000.00", "starting `balance` of every account")
	currency := fs.String("currency", "EUR", "account `currency`")
	token := fs.String("admin-token", "", "bearer `token` required by /admin/* (empty: open)")
	receipts := fs.Bool("receipts", false, "keep every bet request received, for GET /receipts (grows without bound: tests only)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate `file` (PEM; with -tls-key)")
	tlsKey := fs.String("tls-key", "", "the certificate's key `file` (PEM)")
	clientCA := fs.String("client-ca", "", "require client certificates signed by this CA `file` (PEM; mTLS, with -tls-cert)")
	var replicas listFlag
	fs.Var(&replicas, "replica", "writer side: stream every applied bet to the ledger at this base `URL` (repeatable or comma-separated)")
	replication := fs.String("replication", sim.ReplicationSync, "`mode`: sync (answer a bet only once every replica has it) or async")
	lag := fs.Duration("replication-lag", 0, "async: hold each bet for this `duration` before shipping it")
	replTimeout := fs.Duration("replication-timeout", 500*time.Millisecond, "sync: refuse a bet (503) that no replica acknowledged within this `duration`; bounds each shipment")
	writer := fs.String("writer", "", "replica side: base `URL` of the writer this replica follows (heartbeats to its /role)")
	autoPromote := fs.Duration("auto-promote-after", 0, "replica side: promote to the next epoch when the writer was silent for this `duration` (0: off; needs -writer)")
	heartbeat := fs.Duration("heartbeat", 250*time.Millisecond, "replica side: `interval` between questions to the writer's /role")
	peerCA := fs.String("peer-ca", "", "verify https:// replicas and writer with this CA `file` (PEM; default: system roots)")
	peerCert := fs.String("peer-cert", "", "client certificate `file` presented to replicas and writer that require one (PEM; with -peer-key)")
	peerKey := fs.String("peer-key", "", "the client certificate's key `file` (PEM)")
	witness := fs.String("witness", "", "host:port of the Redis `server` that arbitrates leases and automatic promotion (a third location; empty: none)")
	lease := fs.Duration("lease", 2*time.Second, "with -witness: how long a writer's lease at the witness lasts (it stops acknowledging alone a quarter of it earlier)")
	leaseRenew := fs.Duration("lease-renew", 250*time.Millisecond, "with -witness: `interval` between lease renewals")
	if fs.Parse(args) != nil {
		return 2
	}
	var tlsCfg *tls.Config
	if *tlsCert != "" || *tlsKey != "" || *clientCA != "" {
		var err error
		if tlsCfg, err = sim.ServerTLS(*tlsCert, *tlsKey, *clientCA); err != nil {
			fmt.Fprintln(os.Stderr, "hedge ledgersim:", err)
			return 2
		}
	}
	var peerTLS *tls.Config
	if *peerCA != "" || *peerCert != "" || *peerKey != "" {
		var err error
		if peerTLS, err = sim.PeerTLS(*peerCA, *peerCert, *peerKey); err != nil {
			fmt.Fprintln(os.Stderr, "hedge ledgersim:", err)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s := sim.LedgerSettings{Domain: *domain, Role: *role, Epoch: *epoch, StartBalance: *balance,
		Currency: *currency, AdminToken: *token, KeepReceipts: *receipts, Logger: log,
		Replicas: replicas, Replication: *replication, ReplicationLag: *lag, ReplicationTimeout: *replTimeout,
		PeerTLS: peerTLS, Writer: *writer, AutoPromoteAfter: *autoPromote, HeartbeatInterval: *heartbeat,
		Witness: *witness, WitnessHolder: *listen, Lease: *lease, LeaseRenew: *leaseRenew}
	if err := s.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "hedge ledgersim:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hedge ledgersim:", err)
		return 1
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	l := sim.NewLedger(s)
	log.Info("ledger simulator serving", "address", ln.Addr().String(), "domain", *domain, "role", *role, "epoch", *epoch,
		"tls", tlsCfg != nil, "client_certificates", *clientCA != "", "replicas", []string(replicas), "replication", *replication,
		"writer", *writer, "auto_promote_after", *autoPromote, "witness", *witness)
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		l.Close()
	}()
	if err := l.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "hedge ledgersim:", err)
		return 1
	}
	return 0
}

// drillCmd rehearses region losses on a deployment of processes it starts
// and stops itself; it exits 1 when a money invariant breaks or a target
// is missed, 2 when the drill could not run.
func drillCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "drill configuration `file` (default: the embedded drill/drill.yaml)")
	list := fs.String("scenario", "region-down,drain", "comma-separated `scenarios`, or all: region-down, partition, writer-crash, edge-crash, drain, dns-loss")
	loopback := fs.Bool("loopback", false, "127.x addresses instead of network namespaces (no root needed; no partition)")
	promotion := fs.String("promotion", "", "override the configuration's promotion: auto or four-eyes")
	replication := fs.String("replication", "", "override the configuration's replication: sync or async")
	players := fs.Int("players", 0, "override the configuration's number of players")
	out := fs.String("out", "", "`directory` for reports, logs and generated configurations (default: a new temporary one)")
	hedgeBin := fs.String("hedge", "", "hedge `binary` every process runs (default: this one)")
	if fs.Parse(args) != nil {
		return 2
	}
	cfg := drill.DefaultConfig()
	if *file != "" {
		var err error
		if cfg, err = drill.LoadConfig(*file); err != nil {
			fmt.Fprintln(stderr, "hedge drill:", err)
			return 2
		}
	}
	if *promotion != "" {
		cfg.Promotion = *promotion
	}
	if *replication != "" {
		cfg.Replication = *replication
	}
	if *players != 0 {
		cfg.Players = *players
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "hedge drill:", err)
		return 2
	}
	var scenarios []drill.Scenario
	if *list == "all" {
		scenarios = drill.Scenarios
	} else {
		for _, name := range strings.Split(*list, ",") {
			sc, ok := drill.ScenarioByName(strings.TrimSpace(name))
			if !ok {
				fmt.Fprintf(stderr, "hedge drill: unknown scenario %q\n", name)
				return 2
			}
			scenarios = append(scenarios, sc)
		}
	}
	bin := *hedgeBin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			fmt.Fprintln(stderr, "hedge drill:", err)
			return 2
		}
	}
	dir := *out
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "hedge-drill-"); err != nil {
			fmt.Fprintln(stderr, "hedge drill:", err)
			return 2
		}
	}
	// Ctrl-C and SIGTERM stop the drill; everything it started is stopped
	// and its namespaces removed on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	results, err := drill.Run(ctx, drill.Options{Config: cfg, Scenarios: scenarios, Hedge: bin, Dir: dir, Loopback: *loopback, Log: stdout})
	fmt.Fprintf(stdout, "reports in %s\n", dir)
	if err != nil {
		fmt.Fprintln(stderr, "hedge drill:", err)
		return 2
	}
	failed := false
	for _, r := range results {
		if r.Failed() {
			fmt.Fprintf(stdout, "drill FAILED: %s missed a check (see above)\n", r.Scenario)
			failed = true
		}
	}
	if failed {
		return 1
	}
	fmt.Fprintln(stdout, "drill passed: every invariant held and every target was met")
	return 0
}
