package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hedge/e2e/internal/benchkit"
)

// nginxConfig is the reference: what an operator would write to put nginx
// where hedge stands for this route. TLS termination with the same
// certificate, a keep-alive pool to the upstream, a limit_req that never
// triggers (so nginx pays for the lookup, as hedge will for its limits),
// a buffered access log, the headers hedge adds (X-Forwarded-For,
// X-Forwarded-Proto towards the upstream, HSTS towards the client), and
// POST-only routing of /api/bets with everything else answered 404.
//
// What hedge does beyond it: request ids (generated, logged, sent both
// ways), the Forwarded header, Prometheus metrics per route, JSON access
// lines. Those are the costs the target allows hedge (≤ 1.2× nginx).
//
// Both negotiate TLS 1.3 with TLS_AES_128_GCM_SHA256 with wrk. Temp paths
// are set because Debian's build points them at /var/lib/nginx, outside
// the run's directory.
const nginxConfig = `# written by e2e/bench for one measured run
worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;

events {
    worker_connections 4096;
}

http {
    access_log {{dir}}/access.log combined buffer=64k flush=1s;
` + benchkit.NginxHTTPCommon + `

    limit_req_zone $binary_remote_addr zone=z:10m rate=1000000r/s;

    upstream u {
        server {{upstream}};
        keepalive 64;
        keepalive_requests 100000;
    }

    server {
        listen {{listen}} ssl;
        ssl_certificate {{cert}};
        ssl_certificate_key {{key}};
        ssl_protocols TLSv1.2 TLSv1.3;
        # Pick AES-128-GCM, as hedge (Go) does; OpenSSL would otherwise
        # follow the client's preference, AES-256-GCM.
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        add_header Strict-Transport-Security "max-age=31536000" always;

        location /api/bets {
            limit_req zone=z burst=100000 nodelay;
            limit_except POST { deny all; }
` + benchkit.NginxProxyPass + `        }
        location / {
            return 404;
        }
    }
}
`

const nginxBin = "/usr/sbin/nginx"

// startNginx runs nginx in the foreground (daemon off) with a master and
// one worker, both pinned to cpu: taskset pins the master and the worker
// inherits it. The system's nginx service and files are not touched: -p,
// -c and -e point everything into the run's directory.
func startNginx(e *env, cpu int) (*server, error) {
	dir, addrs, err := benchkit.Slot(e.dir, "nginx-", 1)
	if err != nil {
		return nil, err
	}
	listen := addrs[0]
	conf := strings.NewReplacer(
		"{{dir}}", dir, "{{listen}}", listen,
		"{{cert}}", e.certFile, "{{key}}", e.keyFile, "{{upstream}}", e.upstreamAddr,
	).Replace(nginxConfig)
	p, err := benchkit.StartNginx(dir, cpu, nginxBin, conf)
	if err != nil {
		return nil, err
	}
	master := p.PID()
	return &server{
		name: "nginx", proc: p, addr: listen,
		// The master and its worker: the master does little, but it is
		// part of what nginx costs.
		pids:      func() []int { return append([]int{master}, benchkit.Children(master)...) },
		accessLog: filepath.Join(dir, "access.log"),
		errorLog:  filepath.Join(dir, "error.log"),
		// SIGQUIT is nginx's graceful shutdown.
		stop: func() { p.Stop(syscall.SIGQUIT, 5*time.Second) },
	}, nil
}
