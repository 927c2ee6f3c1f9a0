package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"role":"writer","epoch":3}`))
		case "/long":
			w.Write([]byte(`{"role":"` + strings.Repeat("w", 100) + `","epoch":3}`))
		case "/garbled":
			w.Write([]byte(`{"role":`))
		case "/slow":
			<-r.Context().Done()
		default:
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	type role struct {
		Role  string `json:"role"`
		Epoch int64  `json:"epoch"`
	}
	for _, tc := range []struct {
		path    string
		limit   int64
		want    role
		code    int    // a *StatusError with this code
		errText string // otherwise an error containing this, or none
	}{
		{path: "/ok", want: role{"writer", 3}},
		{path: "/ok", limit: 64, want: role{"writer", 3}},
		{path: "/long", want: role{strings.Repeat("w", 100), 3}},
		{path: "/long", limit: 64, errText: "unexpected EOF"},
		{path: "/garbled", errText: "unexpected EOF"},
		{path: "/down", code: http.StatusServiceUnavailable},
		{path: "/slow", errText: "context deadline exceeded"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		var got role
		err := JSON(ctx, srv.Client(), srv.URL+tc.path, tc.limit, &got)
		cancel()
		var se *StatusError
		switch {
		case tc.code != 0:
			if !errors.As(err, &se) || se.Code != tc.code || se.Status != "503 Service Unavailable" || se.URL != srv.URL+tc.path ||
				se.Error() != "GET "+srv.URL+tc.path+" answered 503" {
				t.Errorf("%s: got error %v, want a StatusError %d for the URL", tc.path, err, tc.code)
			}
		case tc.errText != "":
			if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("%s limit %d: got error %v, want one saying %q", tc.path, tc.limit, err, tc.errText)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s limit %d: got %+v, %v; want %+v", tc.path, tc.limit, got, err, tc.want)
		}
	}
}

func TestPostJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]int64
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "not a JSON post", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusConflict)
		}
		fmt.Fprintf(w, `{"epoch":%d,"auth":%q}`, in["epoch"], r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path, token string
		limit       int64
		status      int
		body        string
	}{
		{"/ok", "", 1 << 10, 200, `{"epoch":7,"auth":""}`},
		{"/ok", "s3cret", 1 << 10, 200, `{"epoch":7,"auth":"Bearer s3cret"}`},
		{"/refuse", "", 1 << 10, 409, `{"epoch":7,"auth":""}`},
		{"/ok", "", 10, 200, `{"epoch":7`},
	} {
		status, body, err := PostJSON(context.Background(), srv.Client(), srv.URL+tc.path, tc.token, map[string]int64{"epoch": 7}, tc.limit)
		if err != nil || status != tc.status || string(body) != tc.body {
			t.Errorf("%s token %q limit %d: got %d %q %v; want %d %q", tc.path, tc.token, tc.limit, status, body, err, tc.status, tc.body)
		}
	}
	if _, _, err := PostJSON(context.Background(), srv.Client(), srv.URL, "", func() {}, 1<<10); err == nil {
		t.Error("a value JSON cannot encode was posted; want the encoding error")
	}
	if _, _, err := PostJSON(context.Background(), srv.Client(), "http://127.0.0.1:0/", "", 1, 1<<10); err == nil {
		t.Error("a post to a port nothing listens on succeeded; want the connection error")
	}
}
