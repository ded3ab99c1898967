package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the core's Prometheus collectors. Create them with NewMetrics on a registry of the
// caller's choosing (not the global default, so tests and several Cores can coexist). A nil
// *Metrics is valid and records nothing.
type Metrics struct {
	accounts         *prometheus.GaugeVec
	messages         *prometheus.CounterVec
	reconnects       *prometheus.CounterVec
	sendLatency      prometheus.Histogram
	loginAttempts    *prometheus.CounterVec
	frontendDropped  *prometheus.CounterVec
	frontendFailures *prometheus.CounterVec
	media            *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (when non-nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		accounts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "msnbridge", Name: "accounts",
			Help: "MSN accounts by session state.",
		}, []string{"state"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "messages_total",
			Help: "Messages bridged, by direction (in: from MSN, out: to MSN) and result.",
		}, []string{"direction", "result"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "reconnects_total",
			Help: "Automatic reconnects scheduled, by the reason the session ended.",
		}, []string{"reason"}),
		sendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "msnbridge", Name: "send_latency_seconds",
			Help:    "Time from a frontend's send to MSN's acknowledgement (or failure).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		loginAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "login_attempts_total",
			Help: "MSN login attempts, by result.",
		}, []string{"result"}),
		frontendDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "frontend_events_dropped_total",
			Help: "Events discarded because a frontend's queue was full.",
		}, []string{"frontend"}),
		frontendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "frontend_event_failures_total",
			Help: "Events a frontend returned an error for or panicked on.",
		}, []string{"frontend"}),
		media: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "msnbridge", Name: "media_total",
			Help: "Media carried, by kind (avatar, emoticon, wink, file_in, file_out) and result.",
		}, []string{"kind", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.accounts, m.messages, m.reconnects, m.sendLatency,
			m.loginAttempts, m.frontendDropped, m.frontendFailures, m.media} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) accountState(from, to AccountStateKind) {
	if m == nil || from == to {
		return
	}
	if from != "" {
		m.accounts.WithLabelValues(string(from)).Dec()
	}
	if to != "" {
		m.accounts.WithLabelValues(string(to)).Inc()
	}
}

func (m *Metrics) message(direction, result string) {
	if m != nil {
		m.messages.WithLabelValues(direction, result).Inc()
	}
}

func (m *Metrics) reconnect(reason string) {
	if m != nil {
		m.reconnects.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) sendDuration(seconds float64) {
	if m != nil {
		m.sendLatency.Observe(seconds)
	}
}

func (m *Metrics) loginAttempt(result string) {
	if m != nil {
		m.loginAttempts.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) dropped(frontend string, n int) {
	if m != nil {
		m.frontendDropped.WithLabelValues(frontend).Add(float64(n))
	}
}

func (m *Metrics) frontendFailure(frontend string) {
	if m != nil {
		m.frontendFailures.WithLabelValues(frontend).Inc()
	}
}

func (m *Metrics) mediaResult(kind, result string) {
	if m != nil {
		m.media.WithLabelValues(kind, result).Inc()
	}
}
