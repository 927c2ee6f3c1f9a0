package adminauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"hedge/configs"
)

func TestAuthenticate(t *testing.T) {
	admin := &configs.Admin{Tokens: []configs.AdminToken{
		{Name: "alice", Secret: "alice-0123456789abcdef0123456789abcd", Roles: []configs.Role{configs.RoleRead, configs.RolePromote}},
		{Name: "scraper", Secret: "scraper-0123456789abcdef0123456789ab", Roles: []configs.Role{configs.RoleRead}},
	}}
	withLoopback := *admin
	withLoopback.AllowLoopback = true
	for _, c := range []struct {
		name   string
		admin  *configs.Admin
		remote string
		auth   string
		ok     bool
		who    string
		roles  []configs.Role
	}{
		{"a known token", admin, "10.0.0.1:1234", "Bearer alice-0123456789abcdef0123456789abcd", true, "alice", []configs.Role{"read", "promote"}},
		{"the scheme in any case", admin, "10.0.0.1:1234", "bearer scraper-0123456789abcdef0123456789ab", true, "scraper", []configs.Role{"read"}},
		{"an unknown token", admin, "10.0.0.1:1234", "Bearer alice-0123456789abcdef0123456789abcX", false, "", nil},
		{"a prefix of a token", admin, "10.0.0.1:1234", "Bearer alice-0123456789", false, "", nil},
		{"another scheme", admin, "10.0.0.1:1234", "Basic YWxpY2U6eA==", false, "", nil},
		{"an empty bearer", admin, "10.0.0.1:1234", "Bearer ", false, "", nil},
		{"no token, loopback not allowed", admin, "127.0.0.1:1234", "", false, "", nil},
		{"no token from loopback", &withLoopback, "127.0.0.1:1234", "", true, LoopbackName, []configs.Role{"read", "operate"}},
		{"no token from IPv6 loopback", &withLoopback, "[::1]:1234", "", true, LoopbackName, []configs.Role{"read", "operate"}},
		{"no token from elsewhere", &withLoopback, "10.0.0.1:1234", "", false, "", nil},
		{"an unknown token from loopback", &withLoopback, "127.0.0.1:1234", "Bearer nope-0123456789abcdef0123456789abcde", false, "", nil},
		{"a known token from loopback is that token", &withLoopback, "127.0.0.1:1234", "Bearer alice-0123456789abcdef0123456789abcd", true, "alice", []configs.Role{"read", "promote"}},
	} {
		r := httptest.NewRequest("GET", "/status", nil)
		r.RemoteAddr = c.remote
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		id, ok := Authenticate(c.admin, r)
		if ok != c.ok || id.Name != c.who || !slices.Equal(id.Roles, c.roles) {
			t.Errorf("%s: want ok=%v %q %v, got ok=%v %q %v", c.name, c.ok, c.who, c.roles, ok, id.Name, id.Roles)
		}
	}
}

func TestGuardAndRequire(t *testing.T) {
	admin := &configs.Admin{Tokens: []configs.AdminToken{
		{Name: "scraper", Secret: "scraper-0123456789abcdef0123456789ab", Roles: []configs.Role{configs.RoleRead}},
	}}
	mux := http.NewServeMux()
	mux.Handle("POST /admin/drain", RequireFunc(configs.RoleOperate, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("GET /status", RequireFunc(configs.RoleRead, func(w http.ResponseWriter, r *http.Request) {
		id, _ := From(r.Context())
		w.Write([]byte(id.Name))
	}))
	h := Guard(func() *configs.Admin { return admin }, mux)
	call := func(method, path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = "10.0.0.1:1"
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := call("GET", "/status", "scraper-0123456789abcdef0123456789ab"); w.Code != 200 || w.Body.String() != "scraper" {
		t.Errorf("read with a read token: want 200 naming scraper, got %d %q", w.Code, w.Body)
	}
	w := call("POST", "/admin/drain", "scraper-0123456789abcdef0123456789ab")
	var doc map[string]any
	json.Unmarshal(w.Body.Bytes(), &doc)
	if w.Code != 403 || doc["type"] != "urn:hedge:problem:admin-role-missing" || doc["detail"] != "this needs the role operate; scraper holds read" ||
		w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("operate with a read token: want 403 admin-role-missing naming operate, got %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="hedge-admin", error="insufficient_scope", scope="operate"` {
		t.Errorf("403 WWW-Authenticate: got %q", got)
	}
	w = call("GET", "/status", "")
	json.Unmarshal(w.Body.Bytes(), &doc)
	if w.Code != 401 || doc["type"] != "urn:hedge:problem:unauthorized" || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no token: want 401 unauthorized with WWW-Authenticate, got %d %s", w.Code, w.Body)
	}
}

func TestURL(t *testing.T) {
	for mode, want := range map[configs.TLSMode]string{"off": "http://10.0.0.1:9090", "internal": "https://10.0.0.1:9090", "files": "https://10.0.0.1:9090"} {
		n := &configs.Node{Admin: configs.AdminAddr{Address: "10.0.0.1:9090", TLS: configs.TLS{Mode: mode}}}
		if got := URL(n); got != want {
			t.Errorf("tls mode %s: want %s, got %s", mode, want, got)
		}
	}
}

// BenchmarkAuthenticate: what every admin request pays to find its caller
// among eight tokens (all of them hashed and compared, whichever matches).
func BenchmarkAuthenticate(b *testing.B) {
	admin := &configs.Admin{}
	for i := range 8 {
		admin.Tokens = append(admin.Tokens, configs.AdminToken{Name: string(rune('a' + i)),
			Secret: "token-0123456789abcdef0123456789abcdef" + string(rune('a'+i)), Roles: []configs.Role{configs.RoleRead}})
	}
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("Authorization", "Bearer token-0123456789abcdef0123456789abcdefh")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Authenticate(admin, r); !ok {
			b.Fatal("not authenticated")
		}
	}
}
