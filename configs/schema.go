package configs

import dnslib "github.com/miekg/dns"

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
	// Auth verifies players' bearer tokens on money routes.
	Auth Auth `yaml:"auth"`
	// Ledger configures money routing: idempotency, writer discovery and
	// operator promotion.
	Ledger Ledger `yaml:"ledger"`
	// Routes are shared by every node; the pools they name are resolved in
	// the node's own region.
	Routes  []Route  `yaml:"routes"`
	Regions []Region `yaml:"regions"`
	// Dev lists development stand-ins (ledger simulators, payment rails)
	// that `hedge serve` runs inside its own process, as the demo does.
	Dev Dev `yaml:"dev"`
	// DNS is the authoritative DNS (dnsfail) that nodes with dns.address serve.
	DNS DNS `yaml:"dns"`
	// Streams configures live streams (routes of kind "stream").
	Streams Streams `yaml:"streams"`
	// WAF is the Core Rule Set engine's default for every listener and route.
	WAF WAF `yaml:"waf"`
	// ACL allows or denies clients on every listener, before any route.
	ACL ACL `yaml:"acl"`
	// RateLimits apply to every request (each route may add its own).
	RateLimits []RateLimit `yaml:"rate_limits"`

	// File is the path the configuration was read from ("" for the
	// embedded demo); it prefixes every error message.
	File string `yaml:"-"`
}

// Log configures process logs (log/slog) and the access log.
type Log struct {
	Level  LogLevel  `yaml:"level"`  // debug | info | warn | error
	Format LogFormat `yaml:"format"` // json | text
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

// Admin configures who may use the admin listeners, and how a node calls
// another node's admin listener (the drain push to DNS nodes).
type Admin struct {
	// Tokens are accepted as "Authorization: Bearer TOKEN"; each names
	// who uses it and what it may do.
	Tokens []AdminToken `yaml:"tokens"`
	// AllowLoopback lets requests from 127.0.0.0/8 and ::1 in without a
	// token, with the roles read and operate (never promote).
	AllowLoopback bool `yaml:"allow_loopback"`
	// PushToken names the token (one of Tokens, holding operate) a node
	// presents when it pushes its drain to the DNS nodes' admin listeners.
	PushToken string `yaml:"push_token"`
	// CAFile verifies the certificates of other nodes' admin listeners
	// (drain push); empty uses the internal CA's root for admin listeners
	// in internal mode and the system roots otherwise.
	CAFile string `yaml:"ca_file"`
}

// AdminToken is one bearer token of the admin API.
type AdminToken struct {
	// Name is who uses the token; logs and audit records name it, never
	// the token itself.
	Name string `yaml:"name"`
	// Token inline, or TokenFile holding it (read again on every reload,
	// so a token is rotated by rewriting its file and reloading).
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// Roles are read, operate and promote.
	Roles []Role `yaml:"roles"`

	// Secret is the token itself, from Token or TokenFile, set when the
	// configuration is loaded.
	Secret string `yaml:"-"`
}

// Has reports whether the token holds role.
func (t *AdminToken) Has(role Role) bool {
	for _, r := range t.Roles {
		if r == role {
			return true
		}
	}
	return false
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
	Name string `yaml:"name"`
	// DefaultDomain is the ledger domain of requests that name none
	// (default: the region's name).
	DefaultDomain string `yaml:"default_domain"`
	// Idempotency is where this region's nodes keep Idempotency-Key
	// records: one node alone in memory, several sharing Redis.
	Idempotency Idempotency `yaml:"idempotency"`
	Nodes       []Node      `yaml:"nodes"`
	Pools       []Pool      `yaml:"pools"`
	Writers     []Writer    `yaml:"writers"`
}

// Node is one edge node (one hedge process in production).
type Node struct {
	Name      string     `yaml:"name"`
	Listeners []Listener `yaml:"listeners"`
	Admin     AdminAddr  `yaml:"admin"`
	// Advertise are the addresses DNS answers give for this edge; empty
	// means the host of the first listener.
	Advertise []string `yaml:"advertise"`
	// DNS makes this node serve the deployment's zones.
	DNS NodeDNS `yaml:"dns"`
}

// NodeDNS says where a node serves DNS; an empty address serves none.
type NodeDNS struct {
	// Address is host:port, served over UDP and TCP.
	Address string `yaml:"address"`
}

// AdminAddr is where a node serves metrics, status, pprof and admin calls.
type AdminAddr struct {
	Address string `yaml:"address"`
	// TLS serves the admin listener over HTTPS: mode internal or files,
	// as edge listeners (default off). Internal mode defaults its names
	// to the address's host.
	TLS TLS `yaml:"tls"`
	// ClientCA, a PEM file, makes the admin listener require client
	// certificates it signed (mTLS); read again on every reload.
	ClientCA string `yaml:"client_ca"`
	// ClientCert is the certificate this node presents when it calls
	// other nodes' admin listeners (the drain push).
	ClientCert Certificate `yaml:"client_cert"`
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
	// WAF overrides the top-level waf settings for this listener.
	WAF WAF `yaml:"waf"`
	// HTTP2 offers HTTP/2 (ALPN h2) on a TLS listener, beside HTTP/1.1.
	HTTP2 HTTP2 `yaml:"http2"`
	// HTTP3 offers HTTP/3 (QUIC) on a TLS listener's port over UDP.
	HTTP3 HTTP3 `yaml:"http3"`
}

// HTTP2 is a TLS listener's HTTP/2: the same edge as HTTP/1.1, with the
// limits HTTP/2 adds. Header sizes, bodies and timeouts are the
// listener's limits.
type HTTP2 struct {
	Enabled *bool `yaml:"enabled"`
	// MaxConcurrentStreams bounds the requests one connection may have
	// open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
}

// HTTP3 is a TLS listener's HTTP/3: QUIC on the same port over UDP,
// advertised with Alt-Svc, through the same edge as HTTP/1.1 and HTTP/2.
// Header sizes, bodies, timeouts, the per-address cap and HTTP/2's
// max_concurrent_streams (as QUIC's stream limit) are the listener's.
type HTTP3 struct {
	Enabled *bool `yaml:"enabled"`
}

// TLS selects how a listener gets its certificates.
type TLS struct {
	// Mode is acme | internal | files | off.
	Mode TLSMode `yaml:"mode"`
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
	Challenges []ACMEChallenge `yaml:"challenges"`
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
	// MaxConnsPerIP bounds the open connections of one client address
	// (an IPv6 client's /64); past it a new connection is closed at once.
	// Connections from trusted_proxies are not counted (max_conns bounds
	// them).
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// The argument limits of every route on the listener (a route's own
	// override them): see RouteLimits.
	MaxArgs          int  `yaml:"max_args"`
	MaxArgNameBytes  Size `yaml:"max_arg_name_bytes"`
	MaxArgValueBytes Size `yaml:"max_arg_value_bytes"`
	MaxArgsBytes     Size `yaml:"max_args_bytes"`
	MaxJSONDepth     int  `yaml:"max_json_depth"`
}

// Route sends matching requests somewhere. Kind says where: "proxy" sends
// to an upstream pool, "ledger" to the designated writer of the caller's
// ledger domain, "stream" to the node's live streams.
type Route struct {
	Name  string    `yaml:"name"`
	Match Match     `yaml:"match"`
	Kind  RouteKind `yaml:"kind"`
	Pool  string    `yaml:"pool"`
	// Rewrite replaces the matched path prefix before forwarding
	// ("/api/bets" → "/bets"); empty forwards the path unchanged.
	Rewrite string `yaml:"rewrite"`
	// MaxBodyBytes overrides the listener's body limit for this route.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// Money configures a route of kind "ledger".
	Money Money `yaml:"money"`
	// Auth "jwt" makes a proxy route authenticate players like money
	// routes do (ledger routes always do).
	Auth RouteAuth `yaml:"auth"`
	// Idempotency "required" enforces Idempotency-Key on a proxy route's
	// unsafe methods, scoped by the authenticated player (a cashier in
	// front of payment rails); ledger routes always enforce it.
	Idempotency RouteIdempotency `yaml:"idempotency"`

	// The protective layer, applied in cost order before the route's kind:
	// ACL, shape limits, rate limits, schema, Core Rule Set.
	ACL        ACL         `yaml:"acl"`
	Limits     RouteLimits `yaml:"limits"`
	RateLimits []RateLimit `yaml:"rate_limits"`
	// UpstreamHeaders says which client headers reach the upstream beyond
	// what the edge's contract sends (README: Forwarded headers).
	UpstreamHeaders UpstreamHeaders `yaml:"upstream_headers"`

	// Schema is a JSON Schema file (or builtin:NAME) the body must match;
	// only its free-text fields then reach the Core Rule Set.
	Schema string `yaml:"schema"`
	// WAF overrides the listener's waf settings for this route.
	WAF WAF `yaml:"waf"`
}

// UpstreamHeaders adjusts what the edge forwards of a client's headers.
// A money route (a ledger route, or a proxy route with idempotency:
// required) builds the upstream request from an allowlist; Allow adds
// client headers to it. Other proxy routes forward the client's headers
// except hop-by-hop ones, the edge's namespaces (Ledger-*, X-Hedge-*,
// Hedge-*) and Strip; Strip nil means the default list of headers that
// name a client address, host or method the edge did not establish.
// "Name-*" matches every header starting with "Name-".
type UpstreamHeaders struct {
	Allow []string `yaml:"allow"`
	Strip []string `yaml:"strip"`
}

// Money is what a ledger route needs: it authenticates the player, enforces
// Idempotency-Key on unsafe methods and forwards to the designated writer
// of the request's ledger domain.
type Money struct {
	// Heavy routes (tournaments, missions) are shed while their ledger
	// domain is degraded, so bets keep the capacity.
	Heavy bool `yaml:"heavy"`
	// Timeout bounds the writer's answer; past it the outcome is unknown
	// and the client gets 504 and retries with the same key.
	Timeout        Duration `yaml:"timeout"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Auth verifies bearer JWTs (HS256, RS256, ES256, EdDSA).
type Auth struct {
	JWT JWT `yaml:"jwt"`
}

// JWT says which tokens are accepted and where the ledger domain comes from.
type JWT struct {
	Issuer   string   `yaml:"issuer"`
	Audience []string `yaml:"audience"`
	Keys     []JWTKey `yaml:"keys"`
	// JWKSFile is a JSON Web Key Set on disk, read again on reload.
	JWKSFile string `yaml:"jwks_file"`
	// DomainClaim names the claim holding the ledger domain.
	DomainClaim string `yaml:"domain_claim"`
	// DomainHeader names a header holding the ledger domain, believed only
	// from trusted proxies.
	DomainHeader string   `yaml:"domain_header"`
	Leeway       Duration `yaml:"leeway"`
	// SubjectPattern is a regular expression (RE2, anchored) that every
	// token's subject must match; empty means letters, digits and ._:@-.
	// Whatever it allows, a subject is refused if it has characters that
	// could make the principal header ambiguous (see README).
	SubjectPattern string `yaml:"subject_pattern"`
	// SubjectMaxLength bounds a subject in bytes.
	SubjectMaxLength int `yaml:"subject_max_length"`
}

// JWTKey is one verification key; a private or secret key also lets
// `hedge token` sign test tokens with it.
type JWTKey struct {
	ID  string `yaml:"id"`
	Alg JWTAlg `yaml:"alg"` // HS256 | RS256 | ES256 | EdDSA
	// Secret (HS256) inline — for demos only — or from a file.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFile is PEM (PKIX) for RS256, ES256, EdDSA.
	PublicKeyFile string `yaml:"public_key_file"`
	// PrivateKeyFile is PEM (PKCS#8), used only by `hedge token`.
	PrivateKeyFile string `yaml:"private_key_file"`
}

// Ledger configures money routing for the whole deployment.
type Ledger struct {
	// Probe asks each writer candidate's role endpoint who it is; the
	// highest epoch claiming the writer role is designated.
	Probe WriterProbe `yaml:"probe"`
	// Promotion is the operators' four-eyes designation of a writer.
	Promotion Promotion `yaml:"promotion"`
	// Degradation decides when a domain is degraded, so its heavy routes
	// are shed and bets keep the wallet's capacity.
	Degradation Degradation `yaml:"degradation"`
	// WriterTLS is how the edge reaches writers with https:// URLs (money
	// calls and role probes): the CA that verifies them and the client
	// certificate that proves the edge to them (mTLS).
	WriterTLS ClientTLS `yaml:"writer_tls"`
}

// ClientTLS is how the edge verifies an upstream over HTTPS and proves
// itself to it. Files are read again on every reload.
type ClientTLS struct {
	// CAFile (PEM) verifies the upstream's certificate; empty uses the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile (PEM) are the client certificate presented to
	// upstreams that ask for one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the upstream's certificate must carry;
	// empty uses the host of the member's or writer's URL.
	ServerName string `yaml:"server_name"`
}

// Degradation: a domain is degraded while it has no designated writer, or
// over Window its money calls fail more than ErrorRate or their p95 latency
// exceeds LatencyP95 (with at least MinRequests calls). It recovers after
// RecoverAfter without either.
type Degradation struct {
	ErrorRate    float64  `yaml:"error_rate"`
	LatencyP95   Duration `yaml:"latency_p95"`
	MinRequests  int      `yaml:"min_requests"`
	Window       Duration `yaml:"window"`
	RecoverAfter Duration `yaml:"recover_after"`
}

// WriterProbe polls writers' role endpoints.
type WriterProbe struct {
	Enabled  bool     `yaml:"enabled"`
	Path     string   `yaml:"path"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	// Fall failed probes in a row make a designated writer unreachable.
	Fall int `yaml:"fall"`
}

// Promotion needs two different operators within Window.
type Promotion struct {
	Window Duration `yaml:"window"`
}

// Idempotency configures the Idempotency-Key store of a region.
type Idempotency struct {
	Store            IdempotencyStore `yaml:"store"` // memory | redis
	Retention        Duration         `yaml:"retention"`
	MaxEntries       int              `yaml:"max_entries"`
	MaxResponseBytes Size             `yaml:"max_response_bytes"`
	Redis            Redis            `yaml:"redis"`
}

// Redis is a Redis server shared by a region's nodes.
type Redis struct {
	Address      string `yaml:"address"`
	DB           int    `yaml:"db"`
	PasswordFile string `yaml:"password_file"`
	Prefix       string `yaml:"prefix"`
	// Liveness is the TTL of each node's liveness key, renewed every third
	// of it: a claim whose holder's key has lapsed (the node died or lost
	// Redis) is taken over by the retry through another node.
	Liveness Duration `yaml:"liveness"`
}

// Match selects requests by host, path prefix and method. Empty parts match
// everything; the longest matching path prefix wins.
type Match struct {
	// Hosts are exact names or "*.suffix" wildcards.
	Hosts      []string `yaml:"hosts" json:"hosts,omitempty"`
	PathPrefix string   `yaml:"path_prefix" json:"path_prefix"`
	Methods    []string `yaml:"methods" json:"methods,omitempty"`
}

// Pool is a set of upstream members in one region.
type Pool struct {
	Name string `yaml:"name"`
	// Policy is round_robin or failover (members in order: primary first).
	Policy PoolPolicy `yaml:"policy"`
	// Critical pools turn the node's /healthz red when no member is healthy.
	Critical bool          `yaml:"critical"`
	Members  []Member      `yaml:"members"`
	Health   HealthCheck   `yaml:"health"`
	Passive  PassiveHealth `yaml:"passive"`
	Timeouts Timeouts      `yaml:"timeouts"`
	Retries  Retries       `yaml:"retries"`
	// MaxConnsPerMember bounds open connections to each member.
	MaxConnsPerMember int `yaml:"max_conns_per_member"`
	// SharedIdempotency declares that the members deduplicate
	// Idempotency-Keys in one shared store, so an unsafe keyed request
	// whose outcome is unknown at one member may be retried on another.
	// Off by default: a keyed request that reached a member without an
	// answer stays with that member. Refused for failover pools, whose
	// members (primary and backup rails) are independent by design.
	SharedIdempotency bool `yaml:"shared_idempotency"`
	// TLS is how https:// members (and their health probes) are verified
	// and the client certificate presented to them.
	TLS ClientTLS `yaml:"tls"`
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

// Writer is a ledger writer candidate for one ledger domain; its region is
// the region it is listed under.
type Writer struct {
	Domain string `yaml:"domain"`
	URL    string `yaml:"url"`
	Epoch  int64  `yaml:"epoch"`
	// AdminTokenFile holds the bearer token of the writer's own admin API,
	// with which an approved promotion is carried out at the writer
	// (POST /admin/promote); empty sends none. Read again on every reload.
	AdminTokenFile string `yaml:"admin_token_file"`

	// AdminToken is the token read from AdminTokenFile when the
	// configuration is loaded.
	AdminToken string `yaml:"-"`
}

// Dev configures development stand-ins run inside `hedge serve`.
type Dev struct {
	Ledgers []DevLedger `yaml:"ledgers"`
	Rails   []DevRail   `yaml:"rails"`
}

// DevLedger runs a ledger simulator (see `hedge ledgersim`).
type DevLedger struct {
	Address string     `yaml:"address"`
	Domain  string     `yaml:"domain"`
	Role    LedgerRole `yaml:"role"`
	Epoch   int64      `yaml:"epoch"`
}

// DevRail runs a simulated payment provider.
type DevRail struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
}

// DNS is hedge's authoritative DNS: static zones and service names whose
// answers are the healthy edges of the deployment's regions.
type DNS struct {
	Zones []Zone `yaml:"zones"`
	// Nearest maps client prefixes (EDNS Client Subnet, else the resolver's
	// address) to a preferred region order for services with policy nearest.
	Nearest []NearestRule `yaml:"nearest"`
	RRL     RRL           `yaml:"rrl"`
	// AuditFile receives one JSON line per override (default
	// <data_dir>/audit/dns.jsonl).
	AuditFile string `yaml:"audit_file"`
	// UDPReadOn keeps a UDP loop reading for up to 100 µs after a batch
	// of lone queries before it parks (default true): a client waiting
	// for each answer skips the server's wake-up, for CPU spent on empty
	// reads at moderate rates. false parks at once.
	UDPReadOn *bool `yaml:"udp_read_on"`
}

// Zone is one zone served authoritatively.
type Zone struct {
	// Name is the apex, e.g. "edge.test." (the final dot is optional).
	Name string `yaml:"name"`
	SOA  SOA    `yaml:"soa"`
	// NS are the zone's name servers (absolute names).
	NS []string `yaml:"ns"`
	// TTL is the default TTL of static records.
	TTL     Duration `yaml:"ttl"`
	Records []Record `yaml:"records"`
	// File is a zone file (RFC 1035 master format) of more static records,
	// read at start and on every reload; names are relative to the zone.
	File     string    `yaml:"file"`
	Services []Service `yaml:"services"`
	// DNSSEC signs the zone's answers online.
	DNSSEC ZoneDNSSEC `yaml:"dnssec"`

	// FileRecords are File's records, read and checked when the
	// configuration is loaded.
	FileRecords []dnslib.RR `yaml:"-"`
}

// ZoneDNSSEC is a zone's online signing: answers (static and service names
// alike) are signed when asked for with the DO bit, signatures are cached,
// and denial is compact (RFC 9824). The keys live in
// <data_dir>/dnssec/<zone>/, made by `hedge dnssec keygen`.
type ZoneDNSSEC struct {
	Enabled bool `yaml:"enabled"`
	// Algorithm of new keys: ecdsap256sha256 (13, default) or ed25519 (15).
	Algorithm string `yaml:"algorithm"`
	// Keys: csk (one combined signing key, default) or ksk+zsk.
	Keys string `yaml:"keys"`
	// SignatureValidity is how long a signature is valid (default 14d);
	// a cached signature is made again when half of it has passed.
	SignatureValidity Duration `yaml:"signature_validity"`
}

// SOA is the zone's start of authority; Minimum is the negative-answer TTL.
type SOA struct {
	MName   string   `yaml:"mname"`
	RName   string   `yaml:"rname"`
	Serial  uint32   `yaml:"serial"`
	Refresh Duration `yaml:"refresh"`
	Retry   Duration `yaml:"retry"`
	Expire  Duration `yaml:"expire"`
	Minimum Duration `yaml:"minimum"`
	TTL     Duration `yaml:"ttl"`
}

// Record is one static record, its data in zone-file presentation form.
type Record struct {
	// Name is relative to the zone ("www", "@" for the apex) or absolute.
	Name string `yaml:"name"`
	// Type is A, AAAA, CNAME, TXT, CAA, MX, SRV or NS.
	Type  string   `yaml:"type"`
	TTL   Duration `yaml:"ttl"`
	Value string   `yaml:"value"`
}

// Service is a name answered with healthy edges.
type Service struct {
	// Name is relative to the zone ("play") or absolute.
	Name string `yaml:"name"`
	// Policy is failover | nearest | all.
	Policy string `yaml:"policy"`
	// Regions are the candidate regions, in failover order; empty = every
	// region of the deployment, in configuration order.
	Regions []string  `yaml:"regions"`
	TTL     Duration  `yaml:"ttl"`
	Health  DNSHealth `yaml:"health"`
}

// DNSHealth probes each edge's /healthz as the service name.
type DNSHealth struct {
	Path     string   `yaml:"path"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Rise     int      `yaml:"rise"`
	Fall     int      `yaml:"fall"`
	// CAFile verifies the edges' certificates; empty uses the internal CA
	// for listeners in internal mode and the system roots otherwise.
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// NearestRule maps a client prefix to a preferred region order.
type NearestRule struct {
	CIDR    string   `yaml:"cidr"`
	Regions []string `yaml:"regions"`
}

// RRL is response rate limiting against reflection attacks (UDP only).
type RRL struct {
	// ResponsesPerSecond per client prefix; 0 disables rate limiting.
	ResponsesPerSecond int `yaml:"responses_per_second"`
	// Slip sends every Nth limited response truncated (TC=1), so real
	// resolvers retry over TCP (default 2); -1 drops them all.
	Slip       int      `yaml:"slip"`
	IPv4Prefix int      `yaml:"ipv4_prefix"`
	IPv6Prefix int      `yaml:"ipv6_prefix"`
	Exempt     []string `yaml:"exempt"`
}
