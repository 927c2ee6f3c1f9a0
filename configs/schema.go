package configs

// Config describes a whole deployment: every region, its edge nodes, ledger
// writers and upstream pools. Each node is started with the names of the
// region and node it plays, so every node knows all the others.
type Config struct {
	// Deployment names the deployment in logs and metrics.
	Deployment string `yaml:"deployment"`
	// DataDir keeps state that must survive restarts: the internal CA,
	// certificates obtained through ACME, audit logs.
	DataDir   string    `yaml:"data_dir"`
	Log       Log       `yaml:"log"`
	Admin     Admin     `yaml:"admin"`
	Lifecycle Lifecycle `yaml:"lifecycle"`
	// Routes are shared by every node; the pools they name are resolved in
	// the node's own region.
	Routes  []Route  `yaml:"routes"`
	Regions []Region `yaml:"regions"`
	// Dev lists development stand-ins (ledger simulators, payment rails)
	// that `hedge serve` runs inside its own process, as the demo does.
	Dev Dev `yaml:"dev"`

	// File is the path the configuration was read from ("" for the
	// embedded demo); it prefixes every error message.
	File string `yaml:"-"`
}

// Log configures process logs (log/slog) and the access log.
type Log struct {
	Level  string    `yaml:"level"`  // debug | info | warn | error
	Format string    `yaml:"format"` // json | text
	Access AccessLog `yaml:"access"`
}

// AccessLog writes one JSON line per request.
type AccessLog struct {
	Enabled *bool `yaml:"enabled"`
	// Path is a file to append to; "" or "-" means standard output.
	Path string `yaml:"path"`
	// FlushInterval bounds how long a line may sit in the buffer.
	FlushInterval Duration `yaml:"flush_interval"`
}

// Admin configures who may use the admin listeners.
type Admin struct {
	// Tokens are accepted as "Authorization: Bearer TOKEN".
	Tokens []string `yaml:"tokens"`
	// AllowLoopback lets requests from 127.0.0.0/8 and ::1 in without a token.
	AllowLoopback bool `yaml:"allow_loopback"`
}

// Lifecycle bounds draining on SIGTERM and POST /admin/drain.
type Lifecycle struct {
	// DrainPeriod is how long /healthz answers 503 before listeners close,
	// so DNS and load balancers move players away first.
	DrainPeriod Duration `yaml:"drain_period"`
	// ShutdownTimeout bounds how long in-flight requests may take after
	// the listeners close.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Region is one active-active region of the deployment.
type Region struct {
	Name    string   `yaml:"name"`
	Nodes   []Node   `yaml:"nodes"`
	Pools   []Pool   `yaml:"pools"`
	Writers []Writer `yaml:"writers"`
}

// Node is one edge node (one hedge process in production).
type Node struct {
	Name      string     `yaml:"name"`
	Listeners []Listener `yaml:"listeners"`
	Admin     AdminAddr  `yaml:"admin"`
}

// AdminAddr is where a node serves metrics, status, pprof and admin calls.
type AdminAddr struct {
	Address string `yaml:"address"`
}

// Listener is one public edge listener.
type Listener struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	TLS     TLS    `yaml:"tls"`
	HSTS    HSTS   `yaml:"hsts"`
	// TrustedProxies are CIDRs whose X-Forwarded-For, X-Forwarded-Proto and
	// Forwarded headers are believed; everyone else's are replaced.
	TrustedProxies []string `yaml:"trusted_proxies"`
	Limits         Limits   `yaml:"limits"`
}

// TLS selects how a listener gets its certificates.
type TLS struct {
	// Mode is acme | internal | files | off.
	Mode string `yaml:"mode"`
	// Names are the server names served (and obtained, for acme/internal).
	Names    []string    `yaml:"names"`
	ACME     ACME        `yaml:"acme"`
	Internal InternalCA  `yaml:"internal"`
	Files    Certificate `yaml:"files"`
}

// ACME obtains certificates from an ACME CA (Let's Encrypt, ZeroSSL, Pebble).
type ACME struct {
	Directory string `yaml:"directory"`
	Email     string `yaml:"email"`
	// Challenges enabled, from http-01 and tls-alpn-01.
	Challenges []string `yaml:"challenges"`
	// HTTPAddress is where the HTTP-01 responder listens (":80" in production).
	HTTPAddress string `yaml:"http_address"`
	// TLSALPNAddress is where TLS-ALPN-01 is answered when it is not the
	// listener itself (":443" in production; empty = the listener).
	TLSALPNAddress string `yaml:"tls_alpn_address"`
	// CARoots is a PEM file of roots to trust for the directory (test CAs).
	CARoots string `yaml:"ca_roots"`
}

// InternalCA issues leaf certificates from a local CA kept in the data dir.
type InternalCA struct {
	// Lifetime of issued leaf certificates; certmagic renews them.
	Lifetime Duration `yaml:"lifetime"`
}

// Certificate names PEM files, read again on every reload.
type Certificate struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HSTS is the Strict-Transport-Security header sent on TLS listeners.
type HSTS struct {
	Enabled           *bool    `yaml:"enabled"`
	MaxAge            Duration `yaml:"max_age"`
	IncludeSubdomains bool     `yaml:"include_subdomains"`
	Preload           bool     `yaml:"preload"`
}

// Limits bound what one client may send on a listener.
type Limits struct {
	MaxBodyBytes   Size     `yaml:"max_body_bytes"`
	MaxHeaderBytes Size     `yaml:"max_header_bytes"`
	MaxConns       int      `yaml:"max_conns"`
	ReadTimeout    Duration `yaml:"read_timeout"`
	WriteTimeout   Duration `yaml:"write_timeout"`
	IdleTimeout    Duration `yaml:"idle_timeout"`
}

// Route sends matching requests somewhere. Kind says where: "proxy" sends
// to an upstream pool; later kinds (ledger, stream) plug in beside it.
type Route struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	Kind  string `yaml:"kind"`
	Pool  string `yaml:"pool"`
	// Rewrite replaces the matched path prefix before forwarding
	// ("/api/bets" → "/bets"); empty forwards the path unchanged.
	Rewrite string `yaml:"rewrite"`
	// MaxBodyBytes overrides the listener's body limit for this route.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
}

// Match selects requests by host, path prefix and method. Empty parts match
// everything; the longest matching path prefix wins.
type Match struct {
	// Hosts are exact names or "*.suffix" wildcards.
	Hosts      []string `yaml:"hosts"`
	PathPrefix string   `yaml:"path_prefix"`
	Methods    []string `yaml:"methods"`
}

// Pool is a set of upstream members in one region.
type Pool struct {
	Name string `yaml:"name"`
	// Policy is round_robin or failover (members in order: primary first).
	Policy string `yaml:"policy"`
	// Critical pools turn the node's /healthz red when no member is healthy.
	Critical bool          `yaml:"critical"`
	Members  []Member      `yaml:"members"`
	Health   HealthCheck   `yaml:"health"`
	Passive  PassiveHealth `yaml:"passive"`
	Timeouts Timeouts      `yaml:"timeouts"`
	Retries  Retries       `yaml:"retries"`
	// MaxConnsPerMember bounds open connections to each member.
	MaxConnsPerMember int `yaml:"max_conns_per_member"`
}

// Member is one upstream server.
type Member struct {
	Name string `yaml:"name"`
	// URL is http://host:port (https:// for TLS to the upstream).
	URL string `yaml:"url"`
}

// HealthCheck is an active HTTP probe with rise/fall hysteresis.
type HealthCheck struct {
	Path     string   `yaml:"path"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Rise     int      `yaml:"rise"`
	Fall     int      `yaml:"fall"`
	Disabled bool     `yaml:"disabled"`
}

// PassiveHealth ejects a member after consecutive failed requests.
type PassiveHealth struct {
	MaxFails int      `yaml:"max_fails"`
	EjectFor Duration `yaml:"eject_for"`
}

// Timeouts of one upstream exchange.
type Timeouts struct {
	Connect  Duration `yaml:"connect"`
	Response Duration `yaml:"response"`
}

// Retries are attempted on another member, only for safe methods or
// requests carrying an Idempotency-Key, and only within the budget.
type Retries struct {
	Attempts int `yaml:"attempts"`
	// Budget is the share of requests that may be retries (0.2 = 20 %).
	Budget float64 `yaml:"budget"`
	// MinPerSecond retries are always allowed, so a quiet pool can retry.
	MinPerSecond int `yaml:"min_per_second"`
}

// Writer is a ledger writer candidate for one ledger domain.
type Writer struct {
	Domain string `yaml:"domain"`
	URL    string `yaml:"url"`
	Epoch  int64  `yaml:"epoch"`
}

// Dev configures development stand-ins run inside `hedge serve`.
type Dev struct {
	Ledgers []DevLedger `yaml:"ledgers"`
	Rails   []DevRail   `yaml:"rails"`
}

// DevLedger runs a ledger simulator (see `hedge ledgersim`).
type DevLedger struct {
	Address string `yaml:"address"`
	Domain  string `yaml:"domain"`
	Role    string `yaml:"role"`
	Epoch   int64  `yaml:"epoch"`
}

// DevRail runs a simulated payment provider.
type DevRail struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
}
