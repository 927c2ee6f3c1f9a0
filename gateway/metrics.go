package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"hedge/stream"
)

// metrics is the process's Prometheus registry. Per-route counters live in
// plain atomics (one array per route, indexed by status code) and are read
// at scrape time, so the request path pays one atomic add, not a label
// lookup. They survive reloads: a route keeps its counters by name.
type metrics struct {
	reg      *prometheus.Registry
	latency  *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	upErrors *prometheus.CounterVec
	changes  *prometheus.CounterVec
	reloads  *prometheus.CounterVec

	moneyOutcomes *prometheus.CounterVec
	designations  *prometheus.CounterVec
	degraded      *prometheus.GaugeVec
	switches      *prometheus.CounterVec
	protect       *protectMetrics
	h2            *prometheus.CounterVec // hedge_http2_errors_total

	mu     sync.Mutex
	routes map[string]*routeStats
	nodes  []*Node
}

type routeStats struct {
	region, node, route string
	status              [len(protoNames)][600]atomic.Uint64 // by proto (protoHTTP1, protoHTTP2, protoHTTP3), then status code
	latency             prometheus.Observer
}

func (s *routeStats) count(proto uint8, status int) {
	if status < 0 || status >= len(s.status[0]) {
		status = 0
	}
	if int(proto) >= len(s.status) {
		proto = protoHTTP1
	}
	s.status[proto][status].Add(1)
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), routes: map[string]*routeStats{}}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hedge_request_duration_seconds",
		Help: "Time from the request's arrival to the end of its handling, by route.",
		// Edge latencies: from 100µs (served locally) to 10s (slow upstream).
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"region", "node", "route"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_upstream_retries_total", Help: "Requests sent again to another pool member.",
	}, []string{"region", "node", "pool"})
	m.upErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_upstream_errors_total", Help: "Failed upstream exchanges by kind (connect, timeout, other).",
	}, []string{"region", "node", "pool", "kind"})
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_upstream_health_changes_total", Help: "Health transitions of pool members.",
	}, []string{"region", "node", "pool", "member", "to"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_config_reloads_total", Help: "Configuration reloads by result.",
	}, []string{"result"})
	m.moneyOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_money_requests_total",
		Help: "Money calls by outcome: claimed (forwarded), replayed, key_reused, in_flight, fail_closed, outcome_unknown, shed, taken_over (claimed from a dead node).",
	}, []string{"region", "node", "route", "outcome"})
	m.designations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_ledger_designation_changes_total", Help: "Changes of a ledger domain's designated writer, by new state.",
	}, []string{"region", "node", "domain", "state"})
	m.degraded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hedge_ledger_domain_degraded", Help: "1 while a ledger domain is degraded and its heavy routes are shed.",
	}, []string{"region", "node", "domain"})
	m.switches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_pool_switches_total", Help: "Switches of a failover pool (payment rails) to another member, by new member.",
	}, []string{"region", "node", "pool", "to"})
	m.reg.MustRegister(m.latency, m.retries, m.upErrors, m.changes, m.reloads, m.moneyOutcomes, m.designations, m.degraded, m.switches, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.protect = newProtectMetrics(m.reg)
	m.h2 = newH2Metrics(m.reg)
	return m
}

// route returns the counters of one route, creating them on first use.
func (m *metrics) route(region, node, route string) *routeStats {
	key := region + "\x00" + node + "\x00" + route
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.routes[key]; ok {
		return s
	}
	s := &routeStats{region: region, node: node, route: route, latency: m.latency.WithLabelValues(region, node, route)}
	m.routes[key] = s
	return s
}

func (m *metrics) addNode(n *Node) {
	m.mu.Lock()
	m.nodes = append(m.nodes, n)
	m.mu.Unlock()
}

var (
	requestsDesc = prometheus.NewDesc("hedge_requests_total",
		"Requests answered, by route, protocol (1.1, 2, 3) and status code.", []string{"region", "node", "route", "proto", "status"}, nil)
	memberDesc = prometheus.NewDesc("hedge_upstream_member_healthy",
		"1 when a pool member may receive requests.", []string{"region", "node", "pool", "member"}, nil)
	poolDesc = prometheus.NewDesc("hedge_upstream_pool_healthy_members",
		"Healthy members of a pool.", []string{"region", "node", "pool"}, nil)
	drainingDesc = prometheus.NewDesc("hedge_node_draining",
		"1 while the node is draining.", []string{"region", "node"}, nil)
	epochDesc = prometheus.NewDesc("hedge_ledger_writer_epoch",
		"Epoch of a ledger domain's designated writer; absent while there is none.", []string{"region", "node", "domain", "writer_region", "writer"}, nil)
	designatedDesc = prometheus.NewDesc("hedge_ledger_domain_designated",
		"1 while a ledger domain has exactly one designated writer (money calls fail closed otherwise).", []string{"region", "node", "domain", "state"}, nil)
	streamGaugeDescs = [...]*prometheus.Desc{
		prometheus.NewDesc("hedge_stream_live", "Live streams on the node (published here or relayed).", []string{"region", "node"}, nil),
		prometheus.NewDesc("hedge_stream_sessions", "WHIP and WHEP sessions (and relay pulls' peers).", []string{"region", "node"}, nil),
		prometheus.NewDesc("hedge_stream_viewers", "WebRTC (WHEP) viewers.", []string{"region", "node"}, nil),
		prometheus.NewDesc("hedge_stream_relays", "Streams pulled from another region.", []string{"region", "node"}, nil),
		prometheus.NewDesc("hedge_stream_viewers_connecting", "WebRTC (WHEP) viewers whose ICE and DTLS have not completed (not in the caps yet).", []string{"region", "node"}, nil),
	}
	streamRefusedDesc = prometheus.NewDesc("hedge_stream_refused_total",
		"Stream requests refused, by reason: viewer_cap, connecting_cap, address_rate, address_sessions, session_auth, cap_at_connect.", []string{"region", "node", "reason"}, nil)
	streamTimeoutsDesc = prometheus.NewDesc("hedge_stream_connect_timeouts_total",
		"Stream sessions closed because their ICE and DTLS did not complete within streams.connect_timeout.", []string{"region", "node"}, nil)
	streamDatagramsDesc = prometheus.NewDesc("hedge_stream_datagrams_total",
		"Datagrams sent on the ICE UDP socket (result sent), and those the kernel refused (failed).", []string{"region", "node", "result"}, nil)
	certDesc = prometheus.NewDesc("hedge_certificate_expiry_timestamp_seconds",
		"When the certificate served on a listener expires.", []string{"region", "node", "listener", "name"}, nil)
)

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- memberDesc
	ch <- poolDesc
	ch <- drainingDesc
	ch <- certDesc
	ch <- epochDesc
	ch <- designatedDesc
	for _, d := range streamGaugeDescs {
		ch <- d
	}
	ch <- streamDatagramsDesc
	ch <- streamRefusedDesc
	ch <- streamTimeoutsDesc
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	routes := make([]*routeStats, 0, len(m.routes))
	for _, s := range m.routes {
		routes = append(routes, s)
	}
	nodes := append([]*Node(nil), m.nodes...)
	m.mu.Unlock()
	for _, s := range routes {
		for proto := range s.status {
			for code := range s.status[proto] {
				if n := s.status[proto][code].Load(); n > 0 {
					ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n),
						s.region, s.node, s.route, protoNames[proto], strconv.Itoa(code))
				}
			}
		}
	}
	for _, n := range nodes {
		st := n.state.Load()
		if st == nil {
			continue
		}
		draining := 0.0
		if n.Draining() {
			draining = 1
		}
		ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, draining, n.region, n.name)
		if sn := n.live.Server(); sn != nil {
			ss := sn.Stats()
			for i, v := range [...]int{ss.Streams, ss.Sessions, ss.Viewers, ss.Relays, ss.Connecting} {
				ch <- prometheus.MustNewConstMetric(streamGaugeDescs[i], prometheus.GaugeValue, float64(v), n.region, n.name)
			}
			ch <- prometheus.MustNewConstMetric(streamDatagramsDesc, prometheus.CounterValue, float64(ss.DatagramsSent), n.region, n.name, "sent")
			ch <- prometheus.MustNewConstMetric(streamDatagramsDesc, prometheus.CounterValue, float64(ss.DatagramsFailed), n.region, n.name, "failed")
			for r, v := range ss.Refused {
				ch <- prometheus.MustNewConstMetric(streamRefusedDesc, prometheus.CounterValue, float64(v), n.region, n.name, stream.Refusal(r).String())
			}
			ch <- prometheus.MustNewConstMetric(streamTimeoutsDesc, prometheus.CounterValue, float64(ss.ConnectTimeouts), n.region, n.name)
		}
		for _, p := range st.poolList {
			ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(p.Healthy()), n.region, n.name, p.Name)
			for _, mem := range p.Members {
				v := 0.0
				if mem.Health.Healthy() {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(memberDesc, prometheus.GaugeValue, v, n.region, n.name, p.Name, mem.Name)
			}
		}
		if st.directory != nil {
			for _, ds := range st.directory.Status() {
				des := ds.Designation
				v := 0.0
				if des.OK() {
					v = 1
					ch <- prometheus.MustNewConstMetric(epochDesc, prometheus.GaugeValue, float64(des.Writer.Epoch), n.region, n.name, des.Domain, des.Writer.Region, des.Writer.URL)
				}
				ch <- prometheus.MustNewConstMetric(designatedDesc, prometheus.GaugeValue, v, n.region, n.name, des.Domain, string(des.State))
			}
		}
		for _, l := range st.listeners {
			if l.certs == nil {
				continue
			}
			for _, c := range l.certs.Certificates() {
				for _, name := range c.Names {
					ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, float64(c.NotAfter.Unix()), n.region, n.name, l.cfg.Name, name)
				}
			}
		}
	}
}
