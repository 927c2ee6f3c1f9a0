package albedo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(t.Logf))
	defer srv.Close()

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
		wantHeader               map[string]string // "" value: header must be absent
	}{
		{name: "default GET", method: "GET", path: "/get?x=1", wantStatus: 200, wantBody: ""},
		{name: "default POST", method: "POST", path: "/post", body: "a=b", wantStatus: 200, wantBody: ""},
		{name: "GET /reflect is a default request", method: "GET", path: "/reflect", wantStatus: 200, wantBody: ""},
		{name: "reflect body, sniffed text/plain", method: "POST", path: "/reflect",
			body:       `{"body":"ORA-01756: quoted string not properly terminated"}`,
			wantStatus: 200, wantBody: "ORA-01756: quoted string not properly terminated",
			wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "reflect body, sniffed text/html", method: "POST", path: "/reflect",
			body:       `{"body":"<html><title>r57 Shell</title>"}`,
			wantStatus: 200, wantBody: "<html><title>r57 Shell</title>",
			wantHeader: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "reflect status and headers", method: "POST", path: "/reflect/",
			body:       `{"status":418,"headers":{"Content-Type":"application/json","X-Ok":"yes","Bad Name":"x","X-Bad":"a\r\nb"},"body":"{}"}`,
			wantStatus: 418, wantBody: "{}",
			wantHeader: map[string]string{"Content-Type": "application/json", "X-Ok": "yes", "Bad Name": "", "X-Bad": ""}},
		{name: "reflect encoded body", method: "POST", path: "/reflect",
			body: `{"encodedBody":"PD9waHAgZXZhbCgkX0dFVFsnYyddKTsgPz4="}`, wantStatus: 200, wantBody: "<?php eval($_GET['c']); ?>"},
		{name: "body wins over encodedBody", method: "POST", path: "/reflect",
			body: `{"body":"plain","encodedBody":"ZW5jb2RlZA=="}`, wantStatus: 200, wantBody: "plain"},
		{name: "empty spec", method: "POST", path: "/reflect", body: `{}`, wantStatus: 200, wantBody: ""},
		{name: "invalid JSON", method: "POST", path: "/reflect", body: `{"body":`, wantStatus: 400},
		{name: "status out of range", method: "POST", path: "/reflect", body: `{"status":600}`, wantStatus: 400},
		{name: "status below 100", method: "POST", path: "/reflect", body: `{"status":99}`, wantStatus: 400},
		{name: "invalid base64", method: "POST", path: "/reflect", body: `{"encodedBody":"***"}`, wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status: want %d, got %d (body %q)", tc.wantStatus, resp.StatusCode, got)
			}
			if tc.wantStatus == 200 || tc.wantBody != "" {
				if string(got) != tc.wantBody {
					t.Errorf("body: want %q, got %q", tc.wantBody, got)
				}
			}
			for name, want := range tc.wantHeader {
				if g := resp.Header.Get(name); g != want {
					t.Errorf("header %s: want %q, got %q", name, want, g)
				}
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/capabilities")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"/reflect"`) {
		t.Fatalf("want 200 listing /reflect, got %d %q", resp.StatusCode, b)
	}
}

func BenchmarkReflect(b *testing.B) {
	h := Handler(nil)
	body := `{"status":200,"headers":{"Content-Type":"text/plain"},"body":"ORA-01756: quoted string not properly terminated"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/reflect", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
