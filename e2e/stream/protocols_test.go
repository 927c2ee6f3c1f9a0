package streame2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// tlsEdgeConfig is edgeConfig's node on a TLS listener with HTTP/2 (on by
// default) and HTTP/3.
var tlsEdgeConfig = strings.Replace(edgeConfig, "tls: {mode: off}",
	"tls: {mode: files, names: [play.edge.test], files: {cert: {{CERT}}, key: {{KEY}}}}\n            http3: {enabled: true}", 1)

// TestBrowserPlaysLLHLSOverHTTP2AndHTTP3: Chromium publishes its fake
// camera through WHIP and a second page plays it in LL-HLS (hls.js, its
// WHEP offers refused) from a TLS listener, once with QUIC off (so over
// ALPN h2) and once with QUIC forced on for the node's origin; the browser
// must report, for the page and every LL-HLS request that was answered,
// the protocol the case names, and the LL-HLS latency is logged. A third
// case fails the page's first request for hls.js: the player must load it
// again and play.
func TestBrowserPlaysLLHLSOverHTTP2AndHTTP3(t *testing.T) {
	chromium, node := tools(t)
	const host = "play.edge.test"
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "hedge e2e")
	certFile, keyFile := ca.Issue(t, host, false, host)
	edgeAddr, adminAddr, udp := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeUDPPort(t)
	_, port, _ := net.SplitHostPort(edgeAddr)
	cfg := strings.NewReplacer("{{DATA}}", dir, "{{EDGE}}", edgeAddr, "{{ADMIN}}", adminAddr, "{{UDP}}", udp,
		"{{CERT}}", certFile, "{{KEY}}", keyFile).Replace(tlsEdgeConfig)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, edgeAddr)
		},
	}}
	base := "https://" + net.JoinHostPort(host, port)
	serveHedge(t, dir, cfg, client, base+"/healthz")
	spki := spkiHash(t, certFile)

	for _, tc := range []struct{ name, proto, want, fault string }{
		{"h2", "h2", "h2", ""},
		{"h3", "h3", "h3", ""},
		// The page's hls.js lost as a network handover loses a request
		// (ERR_NETWORK_CHANGED): the player loads it again rather than
		// leaving the stream to Chromium's own HLS, which stalls at a gap.
		{"h2 hls.js lost", "h2", "h2", "lose-hlsjs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A stream of its own: the other cases' segments are not in its
			// playlist.
			stream := map[string]string{"": "table-" + tc.proto, "lose-hlsjs": "table-lost-lib"}[tc.fault]
			res := runPlay(t, chromium, node, base, stream, tc.proto, spki, net.JoinHostPort(host, port), tc.fault)
			if !res.OK {
				t.Fatalf("expected LL-HLS to play over %s, got: %s", tc.want, res.Error)
			}
			if want := map[string]int{"": 1, "lose-hlsjs": 2}[tc.fault]; res.HLSLibLoads != want {
				t.Errorf("expected hls.min.js requested %d times, got %d", want, res.HLSLibLoads)
			}
			if res.Protocols["page "+tc.want] != 1 || res.Protocols["hls "+tc.want] < 10 {
				t.Errorf("expected the player page and at least 10 LL-HLS requests over %s (nextHopProtocol), got %v", tc.want, res.Protocols)
			}
			for k, n := range res.Protocols {
				if !strings.HasSuffix(k, " "+tc.want) && !strings.HasSuffix(k, " abandoned") {
					t.Errorf("expected every request of the player over %s, got %d as %q (all: %v)", tc.want, n, k, res.Protocols)
				}
			}
			t.Logf("over %s: LL-HLS time to first frame %.0f ms; latency in hls.js (now − PROGRAM-DATE-TIME at the playhead): median %.2f s (min %.2f, max %.2f, n=%d over 8 s); %d stalls; requests by protocol %v",
				tc.want, res.HLSTTFF, res.HLSLatency.Median, res.HLSLatency.Min, res.HLSLatency.Max, res.HLSLatency.N, res.HLSStalls, res.Protocols)
		})
	}
}

type playResult struct {
	driveResult
	Protocols   map[string]int `json:"protocols"`
	HLSLibLoads int            `json:"hlsLibLoads"`
}

// runPlay runs play.mjs against the node and returns its result.
func runPlay(t *testing.T, chromium, node, base, stream, proto, spki, hostport, fault string) playResult {
	t.Helper()
	return runDriver[playResult](t, 2*time.Minute, chromium, node, "play.mjs", base, stream, "demo-studio", proto, spki, hostport, fault)
}

// runDriver runs a Node driver script with Chromium within limit, logs
// what it prints and decodes the JSON of its "RESULT " line.
func runDriver[R any](t *testing.T, limit time.Duration, chromium, node string, args ...string) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var raw string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if j, ok := strings.CutPrefix(line, "RESULT "); ok {
			raw = j
			continue
		}
		t.Log(line)
	}
	werr := cmd.Wait()
	if raw == "" {
		t.Fatalf("driver printed no result (exit: %v)", werr)
	}
	var res R
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("driver result %q: %v", raw, err)
	}
	return res
}

// spkiHash is the base64 SHA-256 of the certificate's public key, as
// Chromium's --ignore-certificate-errors-spki-list takes it.
func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}
