package configs

import (
	"strconv"
	"time"
)

// Defaults, in one place. The README's configuration reference quotes them.
const (
	DefaultDataDir           = "/var/lib/hedge"
	DefaultDrainPeriod       = 5 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxConnsPerIP     = 256 // a browser opens ≤ 6 per host: room for dozens of players behind one NAT
	DefaultHSTSMaxAge        = 365 * 24 * time.Hour
	DefaultHTTP2Streams      = 128 // a lobby's parallel requests with room to spare (nginx allows 128)
	DefaultACMEDirectory     = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultACMEHTTPAddress   = ":80"
	DefaultInternalLifetime  = 24 * time.Hour
	DefaultHealthPath        = "/healthz"
	DefaultHealthInterval    = 2 * time.Second
	DefaultHealthTimeout     = time.Second
	DefaultRise              = 2
	DefaultFall              = 2
	DefaultMaxFails          = 3
	DefaultEjectFor          = 10 * time.Second
	DefaultConnectTimeout    = 2 * time.Second
	DefaultResponseTimeout   = 15 * time.Second
	DefaultRetryAttempts     = 2
	DefaultRetryBudget       = 0.2
	DefaultRetryMinPerSec    = 10
	DefaultMaxConnsPerMember = 1024
	DefaultAccessFlush       = time.Second
	DefaultMoneyTimeout      = 5 * time.Second
	DefaultMoneyConnect      = time.Second
	DefaultJWTLeeway         = 30 * time.Second
	DefaultDomainClaim       = "ledger_domain"
	DefaultSubjectMaxLength  = 128
	DefaultProbePath         = "/role"
	DefaultProbeInterval     = 250 * time.Millisecond
	DefaultProbeTimeout      = 500 * time.Millisecond
	DefaultProbeFall         = 2
	DefaultPromotionWindow   = 5 * time.Minute
	DefaultIdemRetention     = 24 * time.Hour
	DefaultIdemMaxEntries    = 1_000_000
	DefaultIdemMaxResponse   = 64 << 10
	DefaultIdemLiveness      = 3 * time.Second
	DefaultDNSTTL            = 10 * time.Second
	DefaultDNSStaticTTL      = time.Hour
	DefaultDNSHealthInterval = time.Second
	DefaultDNSHealthTimeout  = 500 * time.Millisecond
	DefaultDNSSECValidity    = 14 * 24 * time.Hour
	DefaultSOARefresh        = time.Hour
	DefaultSOARetry          = 10 * time.Minute
	DefaultSOAExpire         = 14 * 24 * time.Hour
	DefaultSOAMinimum        = 30 * time.Second
	DefaultRRLSlip           = 2
	DefaultRRLIPv4Prefix     = 24
	DefaultRRLIPv6Prefix     = 56
)

// ApplyDefaults fills every field left empty with its default. Running code
// sees only complete, validated values.
func ApplyDefaults(c *Config) {
	setStr(&c.Deployment, "hedge")
	setStr(&c.DataDir, DefaultDataDir)
	setStr(&c.Log.Level, LevelInfo)
	setStr(&c.Log.Format, FormatJSON)
	setBool(&c.Log.Access.Enabled, true)
	setDur(&c.Log.Access.FlushInterval, DefaultAccessFlush)
	setDur(&c.Lifecycle.DrainPeriod, DefaultDrainPeriod)
	setDur(&c.Lifecycle.ShutdownTimeout, DefaultShutdownTimeout)
	setDur(&c.Auth.JWT.Leeway, DefaultJWTLeeway)
	setStr(&c.Auth.JWT.DomainClaim, DefaultDomainClaim)
	setInt(&c.Auth.JWT.SubjectMaxLength, DefaultSubjectMaxLength)
	setStr(&c.Ledger.Probe.Path, DefaultProbePath)
	setDur(&c.Ledger.Probe.Interval, DefaultProbeInterval)
	setDur(&c.Ledger.Probe.Timeout, DefaultProbeTimeout)
	setInt(&c.Ledger.Probe.Fall, DefaultProbeFall)
	setDur(&c.Ledger.Promotion.Window, DefaultPromotionWindow)
	if c.Ledger.Degradation.ErrorRate == 0 {
		c.Ledger.Degradation.ErrorRate = 0.05
	}
	setDur(&c.Ledger.Degradation.LatencyP95, 750*time.Millisecond)
	setInt(&c.Ledger.Degradation.MinRequests, 20)
	setDur(&c.Ledger.Degradation.Window, 5*time.Second)
	setDur(&c.Ledger.Degradation.RecoverAfter, 15*time.Second)
	for i := range c.Routes {
		r := &c.Routes[i]
		setStr(&r.Kind, KindProxy)
		setStr(&r.Match.PathPrefix, "/")
		if r.Kind == KindLedger {
			setDur(&r.Money.Timeout, DefaultMoneyTimeout)
			setDur(&r.Money.ConnectTimeout, DefaultMoneyConnect)
		}
	}
	for i := range c.Regions {
		reg := &c.Regions[i]
		setStr(&reg.DefaultDomain, reg.Name)
		setStr(&reg.Idempotency.Store, StoreMemory)
		setDur(&reg.Idempotency.Retention, DefaultIdemRetention)
		setInt(&reg.Idempotency.MaxEntries, DefaultIdemMaxEntries)
		setSize(&reg.Idempotency.MaxResponseBytes, DefaultIdemMaxResponse)
		setStr(&reg.Idempotency.Redis.Prefix, "hedge:idem:"+reg.Name+":")
		setDur(&reg.Idempotency.Redis.Liveness, DefaultIdemLiveness)
		for j := range reg.Nodes {
			for k := range reg.Nodes[j].Listeners {
				listenerDefaults(&reg.Nodes[j].Listeners[k], k)
			}
			adminDefaults(&reg.Nodes[j].Admin)
		}
		for j := range reg.Pools {
			poolDefaults(&reg.Pools[j])
		}
	}
	dnsDefaults(&c.DNS)
	wafDefaults(c)
	streamDefaults(c)
	for i := range c.Dev.Ledgers {
		setStr(&c.Dev.Ledgers[i].Role, LedgerWriter)
		if c.Dev.Ledgers[i].Epoch == 0 {
			c.Dev.Ledgers[i].Epoch = 1
		}
	}
}

func dnsDefaults(d *DNS) {
	setBool(&d.UDPReadOn, true)
	for i := range d.Zones {
		z := &d.Zones[i]
		setDur(&z.TTL, DefaultDNSStaticTTL)
		setDur(&z.SOA.Refresh, DefaultSOARefresh)
		setDur(&z.SOA.Retry, DefaultSOARetry)
		setDur(&z.SOA.Expire, DefaultSOAExpire)
		setDur(&z.SOA.Minimum, DefaultSOAMinimum)
		setDur(&z.SOA.TTL, DefaultSOAMinimum)
		if z.SOA.Serial == 0 {
			z.SOA.Serial = 1
		}
		if z.SOA.MName == "" && len(z.NS) > 0 {
			z.SOA.MName = z.NS[0]
		}
		setStr(&z.SOA.RName, "hostmaster."+z.Name)
		setStr(&z.DNSSEC.Algorithm, "ecdsap256sha256")
		setStr(&z.DNSSEC.Keys, "csk")
		setDur(&z.DNSSEC.SignatureValidity, DefaultDNSSECValidity)
		for j := range z.Services {
			s := &z.Services[j]
			setStr(&s.Policy, "failover")
			setDur(&s.TTL, DefaultDNSTTL)
			setStr(&s.Health.Path, DefaultHealthPath)
			setDur(&s.Health.Interval, DefaultDNSHealthInterval)
			setDur(&s.Health.Timeout, DefaultDNSHealthTimeout)
			setInt(&s.Health.Rise, DefaultRise)
			setInt(&s.Health.Fall, DefaultFall)
		}
	}
	setInt(&d.RRL.Slip, DefaultRRLSlip)
	setInt(&d.RRL.IPv4Prefix, DefaultRRLIPv4Prefix)
	setInt(&d.RRL.IPv6Prefix, DefaultRRLIPv6Prefix)
}

func listenerDefaults(l *Listener, index int) {
	if l.Name == "" {
		l.Name = "edge"
		if index > 0 {
			l.Name = "edge" + strconv.Itoa(index+1)
		}
	}
	setBool(&l.HSTS.Enabled, true)
	setDur(&l.HSTS.MaxAge, DefaultHSTSMaxAge)
	setSize(&l.Limits.MaxBodyBytes, DefaultMaxBodyBytes)
	setSize(&l.Limits.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDur(&l.Limits.ReadTimeout, DefaultReadTimeout)
	setDur(&l.Limits.WriteTimeout, DefaultWriteTimeout)
	setDur(&l.Limits.IdleTimeout, DefaultIdleTimeout)
	setInt(&l.Limits.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setBool(&l.HTTP2.Enabled, true)
	setInt(&l.HTTP2.MaxConcurrentStreams, DefaultHTTP2Streams)
	setBool(&l.HTTP3.Enabled, false)
	switch l.TLS.Mode {
	case TLSACME:
		setStr(&l.TLS.ACME.Directory, DefaultACMEDirectory)
		setStr(&l.TLS.ACME.HTTPAddress, DefaultACMEHTTPAddress)
		if len(l.TLS.ACME.Challenges) == 0 {
			l.TLS.ACME.Challenges = []ACMEChallenge{ChallengeHTTP01, ChallengeTLSALPN01}
		}
	case TLSInternal:
		setDur(&l.TLS.Internal.Lifetime, DefaultInternalLifetime)
	}
}

func poolDefaults(p *Pool) {
	setStr(&p.Policy, PolicyRoundRobin)
	setStr(&p.Health.Path, DefaultHealthPath)
	setDur(&p.Health.Interval, DefaultHealthInterval)
	setDur(&p.Health.Timeout, DefaultHealthTimeout)
	setInt(&p.Health.Rise, DefaultRise)
	setInt(&p.Health.Fall, DefaultFall)
	setInt(&p.Passive.MaxFails, DefaultMaxFails)
	setDur(&p.Passive.EjectFor, DefaultEjectFor)
	setDur(&p.Timeouts.Connect, DefaultConnectTimeout)
	setDur(&p.Timeouts.Response, DefaultResponseTimeout)
	setInt(&p.Retries.Attempts, DefaultRetryAttempts)
	if p.Retries.Budget == 0 {
		p.Retries.Budget = DefaultRetryBudget
	}
	setInt(&p.Retries.MinPerSecond, DefaultRetryMinPerSec)
	setInt(&p.MaxConnsPerMember, DefaultMaxConnsPerMember)
	for i := range p.Members {
		if p.Members[i].Name == "" {
			p.Members[i].Name = p.Members[i].URL
		}
	}
}

func setStr[T ~string](p *T, v T) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setBool(p **bool, v bool) {
	if *p == nil {
		*p = &v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}

func setSize(p *Size, v int64) {
	if *p == 0 {
		*p = Size(v)
	}
}
