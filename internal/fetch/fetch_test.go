package fetch

import (
	"context"
	"errors"
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
