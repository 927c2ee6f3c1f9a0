package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/e2e/internal/benchkit"
)

// server is one server under test, started for its cells.
type server struct {
	name  string // hedge, hedge-waf-off, wafref, nginx-modsec
	label string // what the report calls it
	proc  *benchkit.Proc
	addr  string
	admin string       // hedge: its admin listener (metrics, status)
	pids  func() []int // whose CPU time is the server's
	stop  func()
	// scale multiplies -n for this server's cells: the WAF-off hedge
	// answers in tens of µs, and a count of 10 ms clock ticks needs more
	// requests to be exact.
	scale int
	// errorLog is read into error messages when the server misbehaves.
	errorLog string
}

// serveUpstream is the child role behind every server: 200 with a short
// JSON body to anything, at once. It runs pinned to the load CPU, so its
// work is not counted as the server's.
func serveUpstream(addr string) error {
	body := []byte(`{"status":"accepted","balance":"987.50","currency":"EUR"}`)
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		Name:          "wafbench-upstream",
		ReadTimeout:   time.Minute,
		IdleTimeout:   time.Minute,
		NoDefaultDate: true,
	}
	return s.ListenAndServe(addr)
}

// hedgeConfig is one node with a plain-HTTP listener and three proxy routes
// to the upstream: the lobby GET, the bet POST, checked against the
// built-in bet schema (so only the bet's free text reaches the rule
// engine), and a POST route without a schema (the whole body does). The access log is off, as it is for the reference and nginx;
// request ids and metrics stay on.
var hedgeConfig = `# written by e2e/wafbench for one measured run
deployment: wafbench
data_dir: {{dir}}/data
log:
  level: warn
  format: json
  access: {enabled: false}
admin:
  allow_loopback: true
lifecycle:
  drain_period: 10ms
  shutdown_timeout: 2s
waf:
  mode: {{mode}}
  paranoia_level: 1
routes:
  - name: lobby
    match: {path_prefix: /api/lobby, methods: [GET]}
    pool: up
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: up
    max_body_bytes: 16KiB
    schema: builtin:bet
    limits: {content_types: [application/json]}
  - name: feedback
    match: {path_prefix: /api/feedback, methods: [POST]}
    pool: up
    max_body_bytes: 16KiB
    limits: {content_types: [application/json]}
` + benchkit.HedgeBenchRegions("5s", `tls: {mode: "off"}`)

// startHedge writes the configuration with the WAF in mode (block or off),
// checks it with `hedge check` and starts `hedge serve` pinned to cpu.
func startHedge(e *env, cpu int, mode string) (*server, error) {
	listen, admin, dir, err := e.slot("hedge-" + mode)
	if err != nil {
		return nil, err
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{listen}}", listen, "{{admin}}", admin,
		"{{upstream}}", e.upstream, "{{mode}}", strconv.Quote(mode)).Replace(hedgeConfig)
	p, err := benchkit.StartBenchHedge(dir, cpu, e.hedgeBin, conf)
	if err != nil {
		return nil, err
	}
	s := &server{name: "hedge", label: "hedge, WAF block PL1", proc: p, addr: listen, admin: admin, scale: 1,
		pids: func() []int { return []int{p.PID()} },
		stop: func() { p.Stop(syscall.SIGTERM, 5*time.Second) }}
	if mode == "off" {
		s.name, s.label, s.scale = "hedge-waf-off", "hedge, WAF off", 10
	}
	return s, nil
}

// startWafref starts the reference (e2e/wafref: Coraza's http middleware
// with the same CRS configuration, Go's regexp, no schema) in block mode at
// PL1, proxying to the upstream.
func startWafref(e *env, cpu int) (*server, error) {
	listen, _, dir, err := e.slot("wafref")
	if err != nil {
		return nil, err
	}
	p, err := benchkit.StartPinned("wafref", dir, cpu, e.wafrefBin,
		"-listen", listen, "-upstream", "http://"+e.upstream, "-mode", "block", "-pl", "1")
	if err != nil {
		return nil, err
	}
	return &server{name: "wafref", label: "reference: net/http + Coraza middleware", proc: p, addr: listen, scale: 1,
		pids: func() []int { return []int{p.PID()} },
		stop: func() { p.Stop(syscall.SIGTERM, 5*time.Second) }}, nil
}

// modsecConfig is what an operator writes to run Debian's CRS with
// ModSecurity 3: the base settings of ModSecurity's recommended
// configuration (engine on, request bodies read, JSON and XML bodies parsed,
// body errors refused, no response bodies, no audit log), then Debian's CRS
// setup, paranoia level 1, and the rules.
const modsecConfig = `# written by e2e/wafbench for one measured run
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" \
  "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \
  "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" \
  "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'"
SecResponseBodyAccess Off
SecTmpDir {{dir}}/tmp
SecDataDir {{dir}}/tmp
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
SecStatusEngine Off
Include /etc/modsecurity/crs/crs-setup.conf
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"
Include /usr/share/modsecurity-crs/rules/*.conf
`

// nginxConfig puts ModSecurity in front of proxy_pass to the upstream, one
// worker, keep-alive both ways, no access log.
const nginxConfig = `# written by e2e/wafbench for one measured run
load_module {{module}};
worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
` + benchkit.NginxHTTPCommon + `    upstream u {
        server {{upstream}};
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen {{listen}};
        modsecurity on;
        modsecurity_rules_file {{dir}}/modsec.conf;
        location / {
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

const (
	nginxBin     = "/usr/sbin/nginx"
	modsecModule = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
	debianCRS    = "/usr/share/modsecurity-crs/rules"
)

// startNginx runs nginx (master and one worker, both pinned to cpu) with
// ModSecurity and Debian's CRS. The system's nginx and its files are left
// alone: -p, -c and -e point everything into the run's directory.
func startNginx(e *env, cpu int) (*server, error) {
	listen, _, dir, err := e.slot("nginx")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		return nil, err
	}
	r := strings.NewReplacer("{{dir}}", dir, "{{listen}}", listen, "{{upstream}}", e.upstream, "{{module}}", modsecModule)
	if err := os.WriteFile(filepath.Join(dir, "modsec.conf"), []byte(r.Replace(modsecConfig)), 0o644); err != nil {
		return nil, err
	}
	p, err := benchkit.StartNginx(dir, cpu, nginxBin, r.Replace(nginxConfig))
	if err != nil {
		return nil, err
	}
	master := p.PID()
	return &server{name: "nginx-modsec", label: "nginx + ModSecurity 3 + Debian CRS", proc: p, addr: listen, scale: 1,
		// The master and its worker.
		pids:     func() []int { return append([]int{master}, benchkit.Children(master)...) },
		stop:     func() { p.Stop(syscall.SIGQUIT, 5*time.Second) },
		errorLog: filepath.Join(dir, "error.log")}, nil
}

// versions names what was measured besides hedge.
func versions() map[string]string {
	m := map[string]string{}
	if v := benchkit.NginxVersion(nginxBin); v != "" {
		m["nginx"] = v
	}
	for pkg, key := range map[string]string{"libmodsecurity3": "modsecurity", "modsecurity-crs": "debian_crs"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output(); err == nil {
			m[key] = string(out)
		}
	}
	return m
}

var (
	engineRE = regexp.MustCompile(`"engine"\s*:\s*"([^"]*)"`)
	mallocRE = regexp.MustCompile(`(?m)^go_memstats_mallocs_total ([0-9.e+]+)$`)
)

// hedgeEngine reads the rule engine hedge reports in /status ("coraza
// v3.8.1 + re2" or "... + go regexp").
func hedgeEngine(admin string) (string, error) {
	b, err := httpGet("http://" + admin + "/status")
	if err != nil {
		return "", err
	}
	m := engineRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("/status names no rule engine")
	}
	return string(m[1]), nil
}

// mallocs reads hedge's go_memstats_mallocs_total from its admin listener.
func mallocs(admin string) (float64, error) {
	b, err := httpGet("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	m := mallocRE.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("/metrics has no go_memstats_mallocs_total")
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func httpGet(url string) ([]byte, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}
