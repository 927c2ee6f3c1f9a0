package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	txhttp "github.com/corazawaf/coraza/v3/http"

	"hedge/internal/testkit"
	"hedge/waf/ftw/albedo"
)

// server is wafref's handler chain on a real socket, in front of a real
// albedo upstream.
func server(t testing.TB, o options, log io.Writer) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(albedo.Handler(nil))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	waf, err := newWAF(o, log)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(txhttp.WrapHandler(waf, proxy(u)))
	t.Cleanup(s.Close)
	return s
}

func TestReference(t *testing.T) {
	tests := []struct {
		name       string
		o          options
		method     string
		target     string
		header     map[string]string
		body       string
		wantStatus int
		wantLog    []string // rule ids that must be in the error log
		wantNoLog  []string
	}{
		{name: "block PL1, ordinary GET", o: options{mode: "block", paranoia: 1},
			method: "GET", target: "/tables?ids=1,2", wantStatus: 200, wantNoLog: []string{`[id "949110"]`}},
		{name: "block PL1, XSS", o: options{mode: "block", paranoia: 1},
			method: "GET", target: "/search?q=%3Cscript%3Ealert(1)%3C/script%3E", wantStatus: 403,
			wantLog: []string{`[id "941100"]`, `[id "949110"]`}},
		{name: "detect PL1, XSS passes and logs", o: options{mode: "detect", paranoia: 1},
			method: "GET", target: "/search?q=%3Cscript%3Ealert(1)%3C/script%3E", wantStatus: 200,
			wantLog: []string{`[id "941100"]`}},
		{name: "test profile logs the marker and nothing else for it", o: options{testProfile: true},
			method: "GET", target: "/?q=%3Cscript%3E", header: map[string]string{"X-CRS-Test": "marker-1"}, wantStatus: 200,
			wantLog: []string{`X-CRS-Test marker-1`}, wantNoLog: []string{`[id "941100"]`, `[id "920350"]`}},
		{name: "test profile inspects text/html responses", o: options{testProfile: true},
			method: "POST", target: "/reflect", header: map[string]string{"Content-Type": "application/json"},
			body: `{"body":"<html><title>r57 Shell Version 1.50</title></html>"}`, wantStatus: 200,
			wantLog: []string{`[id "955110"]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The error log, read while the server writes it.
			log := &testkit.Buffer{}
			s := server(t, tc.o, log)
			req, err := http.NewRequest(tc.method, s.URL+tc.target, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status: want %d, got %d", tc.wantStatus, resp.StatusCode)
			}
			got := log.String()
			for _, w := range tc.wantLog {
				if !strings.Contains(got, w) {
					t.Errorf("error log: want %s, got:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNoLog {
				if strings.Contains(got, w) {
					t.Errorf("error log: want no %s, got:\n%s", w, got)
				}
			}
		})
	}
}

func TestDirectivesRejectBadFlags(t *testing.T) {
	for _, o := range []options{{mode: "block", paranoia: 0}, {mode: "block", paranoia: 5}, {mode: "audit", paranoia: 1}} {
		if _, err := directives(o); err == nil {
			t.Errorf("directives(%+v): want an error, got none", o)
		}
	}
}

// browserHeaders are the 14 headers of an ordinary browser request (the
// GET that wafbench measures).
var browserHeaders = map[string]string{
	"Accept":                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
	"Accept-Encoding":           "gzip, deflate, br",
	"Accept-Language":           "en-GB,en;q=0.9,de;q=0.8",
	"Authorization":             "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwbGF5ZXItMSIsImV4cCI6MTk5OTk5OTk5OX0.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
	"Cache-Control":             "no-cache",
	"Cookie":                    "session=6f1c2a9e4b7d; locale=en-GB; consent=1",
	"Pragma":                    "no-cache",
	"Referer":                   "https://play.edge.test/lobby",
	"Sec-Ch-Ua":                 `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`,
	"Sec-Ch-Ua-Mobile":          "?0",
	"Sec-Ch-Ua-Platform":        `"Linux"`,
	"Sec-Fetch-Mode":            "navigate",
	"Upgrade-Insecure-Requests": "1",
	"User-Agent":                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
}

// BenchmarkReferenceGET is one browser GET through bare Coraza at PL1 in
// block mode and the proxy to albedo, over real sockets: the reference's
// cost per request, client included.
func BenchmarkReferenceGET(b *testing.B) {
	s := server(b, options{mode: "block", paranoia: 1}, nil)
	c := s.Client()
	req, _ := http.NewRequest("GET", s.URL+"/lobby/tables?ids=12,15,19&currency=EUR", nil)
	for k, v := range browserHeaders {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
