// Command wafref is the reference the WAF is measured against: a minimal
// net/http server that runs Coraza's own http middleware with the Core Rule
// Set, configured as hedge configures it, and nothing else — no schema, no
// reduced documents, no faster regular expressions. In front of an upstream
// (-upstream) it is the WAF benchmark's baseline; with -test-profile and
// -error-log it is the server the CRS regression suite is run against to
// obtain bare Coraza's results, which hedge's must equal. Without -upstream it
// answers itself like CRS's test backend (albedo).
//
// It prints "wafref listening on ADDR" once it accepts connections and stops
// on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
	"github.com/corazawaf/coraza/v3/types"

	"hedge/waf/ftw"
	"hedge/waf/ftw/albedo"
)

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8081", "address to listen on (port 0: any free port)")
	flag.StringVar(&o.upstream, "upstream", "", "URL to proxy to; empty: answer like CRS's albedo backend")
	flag.StringVar(&o.mode, "mode", "block", "block | detect | off")
	flag.IntVar(&o.paranoia, "pl", 1, "paranoia level, 1..4")
	flag.IntVar(&o.inbound, "inbound-threshold", 0, "inbound anomaly score threshold (0: CRS default)")
	flag.BoolVar(&o.inspectResponses, "inspect-responses", false, "run the response-phase rules")
	flag.BoolVar(&o.testProfile, "test-profile", false, "CRS regression-suite profile: detect, PL4, rule 900005, go-ftw's marker rule")
	flag.StringVar(&o.errorLog, "error-log", "", "file for ModSecurity-format lines of matched rules (what go-ftw reads)")
	flag.Parse()
	if err := run(o); err != nil {
		log.Fatalf("wafref: %v", err)
	}
}

type options struct {
	listen, upstream, mode, errorLog string
	paranoia, inbound                int
	inspectResponses, testProfile    bool
}

func run(o options) error {
	var errLog io.Writer
	if o.errorLog != "" {
		f, err := os.OpenFile(o.errorLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		errLog = f
	}
	waf, err := newWAF(o, errLog)
	if err != nil {
		return err
	}
	var next http.Handler = albedo.Handler(nil)
	if o.upstream != "" {
		u, err := url.Parse(o.upstream)
		if err != nil || u.Host == "" {
			return fmt.Errorf("-upstream %q is not an absolute URL", o.upstream)
		}
		next = proxy(u)
	}
	h := next
	if o.mode != "off" {
		h = txhttp.WrapHandler(waf, next)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Printf("wafref listening on %s\n", ln.Addr())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func proxy(u *url.URL) http.Handler {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: t,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
}

func newWAF(o options, errLog io.Writer) (coraza.WAF, error) {
	d, err := directives(o)
	if err != nil {
		return nil, err
	}
	cfg := coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(d)
	if errLog != nil {
		var mu sync.Mutex
		cfg = cfg.WithErrorCallback(func(mr types.MatchedRule) {
			line := mr.ErrorLog()
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			mu.Lock()
			defer mu.Unlock()
			_, _ = io.WriteString(errLog, line)
		})
	}
	return coraza.NewWAF(cfg)
}

// directives is the configuration in hedge's load order: Coraza's recommended
// base, the engine mode, the test profile, CRS setup, default actions for the
// phases CRS's setup leaves out, the paranoia level, then the rules.
func directives(o options) (string, error) {
	if o.testProfile {
		o.mode, o.paranoia, o.inspectResponses = "detect", 4, true
	}
	if o.paranoia < 1 || o.paranoia > 4 {
		return "", fmt.Errorf("-pl %d outside 1..4", o.paranoia)
	}
	var b strings.Builder
	b.WriteString("Include @coraza.conf-recommended\n")
	switch o.mode {
	case "block":
		b.WriteString("SecRuleEngine On\n")
	case "detect", "off":
		b.WriteString("SecRuleEngine DetectionOnly\n")
	default:
		return "", fmt.Errorf("-mode %q is not block, detect or off", o.mode)
	}
	b.WriteString("SecAuditEngine Off\n")
	if o.inspectResponses {
		b.WriteString("SecResponseBodyAccess On\n")
	} else {
		b.WriteString("SecResponseBodyAccess Off\n")
	}
	if o.testProfile {
		// The same profile as hedge's hedge_ftw build; Coraza's recommended
		// configuration keeps the response types the RESPONSE-955 tests need.
		b.WriteString(ftw.Profile)
	}
	b.WriteString("Include @crs-setup.conf.example\n")
	for _, p := range []int{3, 4, 5} {
		fmt.Fprintf(&b, "SecDefaultAction \"phase:%d,log,auditlog,pass\"\n", p)
	}
	fmt.Fprintf(&b, "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d\"\n", o.paranoia)
	fmt.Fprintf(&b, "SecAction \"id:900001,phase:1,pass,t:none,nolog,setvar:tx.detection_paranoia_level=%d\"\n", o.paranoia)
	if o.inbound > 0 {
		fmt.Fprintf(&b, "SecAction \"id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d\"\n", o.inbound)
	}
	b.WriteString("Include @owasp_crs/*.conf\n")
	return b.String(), nil
}
