package configs

// Settings that take one of a fixed set of words. Each type lists its
// values, in the order error messages name them, and validation checks
// them all in one way (oneOf).

// LogLevel is log.level.
type LogLevel string

const (
	LevelDebug LogLevel = "debug"
	LevelInfo  LogLevel = "info"
	LevelWarn  LogLevel = "warn"
	LevelError LogLevel = "error"
)

func (LogLevel) values() []LogLevel { return []LogLevel{LevelDebug, LevelInfo, LevelWarn, LevelError} }

// LogFormat is log.format.
type LogFormat string

const (
	FormatJSON LogFormat = "json"
	FormatText LogFormat = "text"
)

func (LogFormat) values() []LogFormat { return []LogFormat{FormatJSON, FormatText} }

// Role is what an admin token may do.
type Role string

// Admin roles a token may hold.
const (
	// RoleRead reads metrics, status, health, promotions and DNS status.
	RoleRead Role = "read"
	// RoleOperate drains, reloads, overrides DNS answers and profiles.
	RoleOperate Role = "operate"
	// RolePromote requests and approves writer promotions.
	RolePromote Role = "promote"
)

func (Role) values() []Role { return []Role{RoleRead, RoleOperate, RolePromote} }

// TLSMode is how a listener gets its certificates.
type TLSMode string

const (
	TLSACME     TLSMode = "acme"
	TLSInternal TLSMode = "internal"
	TLSFiles    TLSMode = "files"
	TLSOff      TLSMode = "off"
)

func (TLSMode) values() []TLSMode { return []TLSMode{TLSACME, TLSInternal, TLSFiles, TLSOff} }

// ACMEChallenge is a challenge type an ACME listener answers.
type ACMEChallenge string

const (
	ChallengeHTTP01    ACMEChallenge = "http-01"
	ChallengeTLSALPN01 ACMEChallenge = "tls-alpn-01"
)

func (ACMEChallenge) values() []ACMEChallenge {
	return []ACMEChallenge{ChallengeHTTP01, ChallengeTLSALPN01}
}

// RouteKind says where a route sends its requests.
type RouteKind string

const (
	KindProxy  RouteKind = "proxy"
	KindLedger RouteKind = "ledger"
	KindStream RouteKind = "stream"
)

func (RouteKind) values() []RouteKind { return []RouteKind{KindProxy, KindLedger, KindStream} }

// RouteAuth is how a proxy route authenticates players ("" for not at all).
type RouteAuth string

const AuthJWT RouteAuth = "jwt"

func (RouteAuth) values() []RouteAuth { return []RouteAuth{AuthJWT} }

// RouteIdempotency says whether a proxy route enforces Idempotency-Key
// ("" for not).
type RouteIdempotency string

const IdempotencyRequired RouteIdempotency = "required"

func (RouteIdempotency) values() []RouteIdempotency { return []RouteIdempotency{IdempotencyRequired} }

// PoolPolicy is how a pool picks a member.
type PoolPolicy string

const (
	PolicyRoundRobin PoolPolicy = "round_robin"
	PolicyFailover   PoolPolicy = "failover"
)

func (PoolPolicy) values() []PoolPolicy { return []PoolPolicy{PolicyRoundRobin, PolicyFailover} }

// IdempotencyStore is where a region keeps Idempotency-Key records.
type IdempotencyStore string

const (
	StoreMemory IdempotencyStore = "memory"
	StoreRedis  IdempotencyStore = "redis"
)

func (IdempotencyStore) values() []IdempotencyStore {
	return []IdempotencyStore{StoreMemory, StoreRedis}
}

// JWTAlg is a JWT signature algorithm.
type JWTAlg string

const (
	AlgHS256 JWTAlg = "HS256"
	AlgRS256 JWTAlg = "RS256"
	AlgES256 JWTAlg = "ES256"
	AlgEdDSA JWTAlg = "EdDSA"
)

func (JWTAlg) values() []JWTAlg { return []JWTAlg{AlgHS256, AlgRS256, AlgES256, AlgEdDSA} }

// LedgerRole is what a development ledger simulator claims to be.
type LedgerRole string

const (
	LedgerWriter  LedgerRole = "writer"
	LedgerReplica LedgerRole = "replica"
)

func (LedgerRole) values() []LedgerRole { return []LedgerRole{LedgerWriter, LedgerReplica} }

// WAFMode is what the Core Rule Set engine does with what it finds.
type WAFMode string

const (
	WAFBlock  WAFMode = "block"
	WAFDetect WAFMode = "detect"
	WAFOff    WAFMode = "off"
	// WAFLearn runs the rules as detect does and records the shape of the
	// traffic the route lets through, for `hedge waf suggest`.
	WAFLearn WAFMode = "learn"
)

func (WAFMode) values() []WAFMode { return []WAFMode{WAFBlock, WAFDetect, WAFOff, WAFLearn} }

// RateLimitKey is what one rate-limit bucket is for.
type RateLimitKey string

const (
	KeyIP        RateLimitKey = "ip"
	KeyPrincipal RateLimitKey = "principal"
	KeyRoute     RateLimitKey = "route"
)

func (RateLimitKey) values() []RateLimitKey { return []RateLimitKey{KeyIP, KeyPrincipal, KeyRoute} }
