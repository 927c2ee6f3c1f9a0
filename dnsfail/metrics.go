package dnsfail

import (
	"strconv"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries   *prometheus.CounterVec
	byRcode   [2][24]prometheus.Counter // [udp][rcode], resolved once
	changes   *prometheus.CounterVec
	failOpenG *prometheus.GaugeVec
	edge      *prometheus.GaugeVec
	rrl       *prometheus.CounterVec
	overrides *prometheus.CounterVec
	pushes    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedge_dns_responses_total",
			Help: "DNS responses sent, by transport and response code."}, []string{"proto", "rcode"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedge_dns_answer_changes_total",
			Help: "Changes of a service name's answers."}, []string{"service"}),
		failOpenG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hedge_dns_fail_open",
			Help: "1 while a service answers with every candidate because none is healthy."}, []string{"service"}),
		edge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hedge_dns_edge_up",
			Help: "Health of each edge as a candidate of a service (1 up, 0 down)."}, []string{"target"}),
		rrl: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedge_dns_rrl_limited_total",
			Help: "Responses limited by response rate limiting, dropped or slipped (sent truncated)."}, []string{"action"}),
		overrides: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedge_dns_overrides_total",
			Help: "Manual overrides of a service's regions."}, []string{"service", "mode"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedge_dns_drain_pushes_total",
			Help: "Drain announcements received from edges."}, []string{"node", "draining"}),
	}
	for _, c := range []prometheus.Collector{m.queries, m.changes, m.failOpenG, m.edge, m.rrl, m.overrides, m.pushes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for p, proto := range []string{"tcp", "udp"} {
		for rc := range m.byRcode[p] {
			name := dns.RcodeToString[rc]
			if rc == dns.RcodeBadVers {
				name = "BADVERS" // the only extended code a server without TSIG sends
			}
			if name == "" {
				name = strconv.Itoa(rc)
			}
			m.byRcode[p][rc] = m.queries.WithLabelValues(proto, name)
		}
	}
	return m, nil
}

func (m *metrics) query(udp bool, rcode int) {
	p := 0
	if udp {
		p = 1
	}
	if rcode >= 0 && rcode < len(m.byRcode[p]) {
		m.byRcode[p][rcode].Inc()
	}
}

func (m *metrics) failOpen(service string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.failOpenG.WithLabelValues(service).Set(v)
}

func (m *metrics) edgeUp(_ string, target string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.edge.WithLabelValues(target).Set(v)
}
