package main

import (
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/cmd/internal/syncfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/mdt"
)

// metrics are mdtd's Prometheus metrics, in a private registry.
type metrics struct {
	reg      *prometheus.Registry
	appended *prometheus.CounterVec
	evicted  *prometheus.CounterVec
	purged   prometheus.Counter
	commit   prometheus.Histogram
	syncs    prometheus.Counter
	syncLat  prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdt_changelog_records_appended_total", Help: "Changelog records appended, by record type.",
		}, []string{"type"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdt_changelog_users_evicted_total", Help: "Changelog users evicted by garbage collection, by reason.",
		}, []string{"reason"}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mdt_changelog_records_purged_total", Help: "Changelog records purged after clears and deregistrations.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mdt_commit_latency_seconds",
			Help:    "Latency of successful mutating RPCs, including the group-committed WAL sync.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mdt_fsyncs_total", Help: "fsync/fdatasync calls issued by the store (WAL, manifest, tables).",
		}),
		syncLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mdt_fsync_duration_seconds", Help: "Duration of store fsync calls.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 20),
		}),
	}
	m.reg.MustRegister(m.appended, m.evicted, m.purged, m.commit, m.syncs, m.syncLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register adds the metrics that read the MDT and the server.
func (m *metrics) register(md *mdt.MDT, srv *api.Server) {
	l := md.Log()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		gauge("mdt_changelog_current_index", "Index of the last changelog record assigned.", func() float64 { return float64(l.State().Current) }),
		gauge("mdt_changelog_first_index", "Lowest retained changelog index.", func() float64 { return float64(l.State().First) }),
		gauge("mdt_changelog_durable_index", "Highest changelog index known synced.", func() float64 { return float64(l.Durable()) }),
		gauge("mdt_changelog_streams", "Open changelog Read streams.", func() float64 { return float64(srv.Streams()) }),
		gauge("mdt_changelog_users", "Registered changelog users.", func() float64 { return float64(l.State().Users) }),
		&lagCollector{md: md},
	)
}

// onRPC observes the commit latency of successful mutating RPCs.
func (m *metrics) onRPC(method string, d time.Duration, err error) {
	if err == nil && mutating(method) {
		m.commit.Observe(d.Seconds())
	}
}

// lagCollector reports mdt_changelog_user_lag{user}: records each user has
// not cleared, from the live user list at scrape time.
type lagCollector struct{ md *mdt.MDT }

var lagDesc = prometheus.NewDesc("mdt_changelog_user_lag", "Changelog records a user has not cleared (current index - user index).", []string{"user"}, nil)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.md.Log()
	cur := l.State().Current
	for _, u := range l.Users() {
		lag := 0.0
		if cur > u.Index {
			lag = float64(cur - u.Index)
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag, u.DisplayName())
	}
}

// fs wraps the disk so that every sync of a store file is counted and
// timed.
func (m *metrics) fs() vfs.FS {
	return syncfs.New(vfs.Default, func(d time.Duration) {
		m.syncs.Inc()
		m.syncLat.Observe(d.Seconds())
	})
}
