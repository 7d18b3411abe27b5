package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rcrouter/rcrouter/internal/store"
)

type appMetrics struct {
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

func newAppMetrics(reg prometheus.Registerer) *appMetrics {
	m := &appMetrics{
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rcrouter_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or was refused (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rcrouter_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load.",
		}),
	}
	reg.MustRegister(m.reloadOK, m.reloadTime)
	return m
}

func (m *appMetrics) reloaded(ok bool, at time.Time) {
	if ok {
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(at.Unix()))
	} else {
		m.reloadOK.Set(0)
	}
}

// statsTTL bounds how often a scrape may run the store's aggregate queries:
// with a large backlog they cost tens of milliseconds.
const statsTTL = 5 * time.Second

var (
	pendingDesc = prometheus.NewDesc("rcrouter_deliveries_pending", "Deliveries not yet final (pending, retrying or in flight), per destination.", []string{"destination"}, nil)
	deadDesc    = prometheus.NewDesc("rcrouter_deliveries_dead", "Dead deliveries waiting for a replay or expiry, per destination.", []string{"destination"}, nil)
	oldestDesc  = prometheus.NewDesc("rcrouter_oldest_pending_age_seconds", "Age of the oldest unfinished delivery, per destination.", []string{"destination"}, nil)
)

// queueCollector reports queue depth from the store at scrape time.
type queueCollector struct {
	app   *App
	mu    sync.Mutex
	at    time.Time
	stats map[string]store.DestinationStats
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- deadDesc
	ch <- oldestDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.app.opts.Clock.Now()
	if now.Sub(c.at) > statsTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stats, err := c.app.store.Stats(ctx, now.Add(-24*time.Hour))
		cancel()
		if err != nil {
			return
		}
		c.stats, c.at = stats, now
	}
	for _, name := range c.app.Config().Names {
		st := c.stats[name]
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending), name)
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(st.Dead), name)
		age := 0.0
		if st.OldestPending != nil {
			age = now.Sub(*st.OldestPending).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, name)
	}
}
