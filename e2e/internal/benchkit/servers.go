package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// WriteHedgeConfig writes conf to dir/hedge.yaml and checks it with
// `hedge check` (see CheckHedgeConfig). It returns the file's path.
func WriteHedgeConfig(hedgeBin, dir, conf string) (string, error) {
	path := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	if err := CheckHedgeConfig(context.Background(), hedgeBin, path); err != nil {
		return "", err
	}
	return path, nil
}

// CheckHedgeConfig runs `hedge check -c path`, so that a schema mistake
// is reported as such, not as a server that never came up.
func CheckHedgeConfig(ctx context.Context, hedgeBin, path string) error {
	if out, err := exec.CommandContext(ctx, hedgeBin, "check", "-c", path).CombinedOutput(); err != nil {
		return fmt.Errorf("hedge check: %v\n%s", err, out)
	}
	return nil
}

// StartHedge runs `hedge serve` with the configuration conf as node of
// region, pinned to cpu (StartPinned); its output goes to dir/name.out.
func StartHedge(name, dir string, cpu int, hedgeBin, conf, region, node string) (*Proc, error) {
	return StartPinned(name, dir, cpu, hedgeBin, "serve", "-c", conf, "-region", region, "-node", node)
}

// BenchRegion, BenchNode: the node StartBenchHedge starts from a
// configuration whose regions are HedgeBenchRegions.
const BenchRegion, BenchNode = "bench", "bench-1"

// HedgeBenchRegions is the regions section of the harnesses that measure
// one hedge node against a peer (e2e/bench, e2e/h2bench, e2e/wafbench):
// node BenchNode of region BenchRegion with its public listener at
// {{listen}}, open to any number of connections from the load generator's
// one address, its admin API at {{admin}}, and the pool "up" whose one
// member is the harness's upstream at {{upstream}}, health-checked every
// health. listener holds the listener's own settings (its tls, http3),
// one YAML line each.
func HedgeBenchRegions(health string, listener ...string) string {
	var b strings.Builder
	b.WriteString(`regions:
  - name: ` + BenchRegion + `
    nodes:
      - name: ` + BenchNode + `
        listeners:
          - name: public
            address: {{listen}}
            # The load generator is one address opening many connections.
            limits: {max_conns_per_ip: 100000}
`)
	for _, l := range listener {
		b.WriteString("            " + l + "\n")
	}
	b.WriteString(`        admin: {address: {{admin}}}
    pools:
      - name: up
        members:
          - {name: upstream, url: "http://{{upstream}}"}
        health: {interval: ` + health + `}
`)
	return b.String()
}

// StartBenchHedge writes conf, a configuration whose regions are
// HedgeBenchRegions, to dir/hedge.yaml, checks it (WriteHedgeConfig) and
// runs hedgeBin as its one node, pinned to cpu (StartHedge), with its
// output in dir/hedge.out.
func StartBenchHedge(dir string, cpu int, hedgeBin, conf string) (*Proc, error) {
	path, err := WriteHedgeConfig(hedgeBin, dir, conf)
	if err != nil {
		return nil, err
	}
	return StartHedge("hedge", dir, cpu, hedgeBin, path, BenchRegion, BenchNode)
}

// HedgeProxyHead is what the harnesses that measure the proxy and money
// paths (e2e/bench, e2e/moneybench) configure besides the node, its
// routes and their auth: the WAF off, warnings and a buffered JSON access
// log at {{dir}}/access.log, the admin API on loopback, a quick drain.
const HedgeProxyHead = `# The proxy and money paths alone: the protective layer's cost is
# measured by e2e/wafbench against nginx + ModSecurity.
waf: {mode: off}
log:
  level: warn
  format: json
  access:
    enabled: true
    path: {{dir}}/access.log
    flush_interval: 1s
admin:
  allow_loopback: true
lifecycle:
  drain_period: 10ms
  shutdown_timeout: 2s
`

// NginxHTTPCommon is what every harness's nginx sets in its http block:
// the temporary paths, which Debian's build points at /var/lib/nginx,
// moved into the run's directory ({{dir}}), and keep-alive connections
// that last the whole run.
const NginxHTTPCommon = `    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server_tokens off;
`

// NginxProxyPass is how every harness's nginx location proxies to the
// upstream u: HTTP/1.1 keep-alive, the client's address and scheme
// forwarded, as hedge forwards them.
const NginxProxyPass = `            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
`

// StartNginx writes the configuration conf to dir/nginx.conf, checks it
// with `nginx -t`, then runs nginx in the foreground (daemon off) with its
// master pinned to cpu; the workers inherit the affinity. The system's
// nginx service and files are left alone: -p, -c and -e point everything
// into dir, where its error log is error.log and its output nginx.out.
// SIGQUIT stops it gracefully.
func StartNginx(dir string, cpu int, nginxBin, conf string) (*Proc, error) {
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-p", dir + "/", "-c", path, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off; master_process on;"}
	if out, err := exec.Command(nginxBin, append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s", err, out)
	}
	return StartPinned("nginx", dir, cpu, nginxBin, args...)
}

// NginxVersion is what `nginxBin -v` names ("nginx/1.22.1"), for the
// reports; "" when it cannot be run.
func NginxVersion(nginxBin string) string {
	out, err := exec.Command(nginxBin, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "version: ")
	return v
}
