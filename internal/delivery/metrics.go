package delivery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus metrics. Labels are only the
// destination name, the outcome and the reason (bounded sets, STYLE rule 9).
// A nil *Metrics records nothing.
type Metrics struct {
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	breaker  *prometheus.GaugeVec
	paused   *prometheus.GaugeVec
}

// NewMetrics creates the scheduler metrics and registers them on reg (a
// private registry; nil registers nothing). It panics if they are already
// registered there, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rcrouter_attempts_total",
			Help: "Delivery attempts (one per dispatch record, i.e. per real request), by destination, outcome and reason.",
		}, []string{"destination", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rcrouter_attempt_duration_seconds",
			Help:    "Duration of delivery attempts, by destination.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"destination"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rcrouter_breaker_state",
			Help: "Circuit breaker state per destination: 0 closed, 1 half-open, 2 open.",
		}, []string{"destination"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rcrouter_destination_paused",
			Help: "1 when an operator paused the destination, else 0.",
		}, []string{"destination"}),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.duration, m.breaker, m.paused)
	}
	return m
}

// attempt counts one attempt; d < 0 means its duration is unknown (a body
// that did not decode never reached the destination).
func (m *Metrics) attempt(destination, outcome, reason string, d time.Duration) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(destination, outcome, reason).Inc()
	if d >= 0 {
		m.duration.WithLabelValues(destination).Observe(d.Seconds())
	}
}

func (m *Metrics) setBreaker(destination string, s breakerState) {
	if m == nil {
		return
	}
	m.breaker.WithLabelValues(destination).Set(float64(s))
}

func (m *Metrics) setPaused(destination string, paused bool) {
	if m == nil {
		return
	}
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.WithLabelValues(destination).Set(v)
}

// forget drops the gauges of a removed destination so it stops being
// reported; its counters keep their totals (Prometheus counters must not
// go backwards while the process runs).
func (m *Metrics) forget(destination string) {
	if m == nil {
		return
	}
	m.breaker.DeleteLabelValues(destination)
	m.paused.DeleteLabelValues(destination)
}
