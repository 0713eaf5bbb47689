package main

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/syncfs"
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
	// checkpoints counts signed checkpoints; ckIndex is the index the
	// last one covers.
	checkpoints *prometheus.CounterVec
	ckIndex     prometheus.Gauge
	// grpc are the standard per-method gRPC server metrics
	// (grpc_server_started_total, grpc_server_handled_total{grpc_code},
	// grpc_server_handling_seconds).
	grpc *grpcprom.ServerMetrics
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
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdt_changelog_checkpoints_total", Help: "Signed changelog checkpoints written, by kind (periodic, rotation).",
		}, []string{"kind"}),
		ckIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mdt_changelog_checkpoint_index", Help: "Changelog index the last signed checkpoint covers.",
		}),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(50e-6, 4, 12)))),
	}
	// Every counter exists from the start, at 0: a dashboard's rate() and
	// alerts see "no evictions" rather than "no data".
	for t := range changelog.NumTypes {
		m.appended.WithLabelValues(changelog.Type(t).String())
	}
	for _, r := range store.EvictReasons {
		m.evicted.WithLabelValues(r)
	}
	for _, k := range []changelog.CheckpointKind{changelog.CheckpointPeriodic, changelog.CheckpointRotation} {
		m.checkpoints.WithLabelValues(k.String())
	}
	m.reg.MustRegister(m.checkpoints, m.ckIndex, m.appended, m.evicted, m.purged, m.commit, m.syncs, m.syncLat, m.grpc,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// unaryInterceptors feed the gRPC metrics of unary calls, also those an
// Exec stream carries (counted under their own method).
func (m *metrics) unaryInterceptors() []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{m.grpc.UnaryServerInterceptor()}
}

// serverOptions feed the gRPC metrics of streams.
func (m *metrics) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor())}
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
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mdt_changelog_dedup_suppressed_total",
			Help: "Access records (OPEN, GXATR, NOPEN, DENY) suppressed by changelog_dedup_window.",
		}, func() float64 { return float64(md.DedupSuppressed()) }),
		&lagCollector{md: md},
		&pebbleCollector{db: md.DB()},
		&keyCollector{md: md},
	)
	// Every method of every service, with every code, exists from the
	// start.
	m.grpc.InitializeMetrics(srv)
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

// pebbleCollector reports the store's health from pebble.DB.Metrics at
// scrape time.
type pebbleCollector struct{ db *pebble.DB }

var (
	pebbleDebtDesc = prometheus.NewDesc("mdt_pebble_compaction_debt_bytes",
		"Estimated bytes compactions must rewrite for the LSM to reach a stable shape.", nil, nil)
	pebbleCompactingDesc = prometheus.NewDesc("mdt_pebble_compactions_in_progress",
		"Compactions running now.", nil, nil)
	pebbleL0FilesDesc = prometheus.NewDesc("mdt_pebble_l0_files",
		"Sstables in level 0 (read amplification grows with them).", nil, nil)
	pebbleL0SublevelsDesc = prometheus.NewDesc("mdt_pebble_l0_sublevels",
		"Sublevels of level 0; Pebble throttles writes as they grow.", nil, nil)
	pebbleDiskDesc = prometheus.NewDesc("mdt_pebble_disk_usage_bytes",
		"Disk space used by the store: live and obsolete sstables, WAL, manifest.", nil, nil)
	pebbleMemtableDesc = prometheus.NewDesc("mdt_pebble_memtable_bytes",
		"Bytes allocated to memtables.", nil, nil)
	pebbleWALFsyncDesc = prometheus.NewDesc("mdt_pebble_wal_fsync_duration_seconds",
		"Latency of WAL fsyncs as Pebble's log writer measures them.", nil, nil)
)

// walFsyncBounds are the bucket bounds (seconds) the WAL fsync histogram
// is reported with: each takes the count of Pebble's largest bucket at or
// below it.
var walFsyncBounds = []float64{100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}

func (c *pebbleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pebbleDebtDesc, pebbleCompactingDesc, pebbleL0FilesDesc,
		pebbleL0SublevelsDesc, pebbleDiskDesc, pebbleMemtableDesc, pebbleWALFsyncDesc} {
		ch <- d
	}
}

func (c *pebbleCollector) Collect(ch chan<- prometheus.Metric) {
	pm := c.db.Metrics()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(pebbleDebtDesc, float64(pm.Compact.EstimatedDebt))
	gauge(pebbleCompactingDesc, float64(pm.Compact.NumInProgress))
	gauge(pebbleL0FilesDesc, float64(pm.Levels[0].TablesCount))
	gauge(pebbleL0SublevelsDesc, float64(pm.Levels[0].Sublevels))
	gauge(pebbleDiskDesc, float64(pm.DiskSpaceUsage()))
	gauge(pebbleMemtableDesc, float64(pm.MemTable.Size))
	if h := pm.LogWriter.FsyncLatency; h != nil {
		if hm, ok := walFsyncHistogram(h); ok {
			ch <- hm
		}
	}
}

// walFsyncHistogram converts Pebble's WAL fsync histogram (nanosecond
// buckets, about a hundred of them) to seconds on walFsyncBounds.
func walFsyncHistogram(h prometheus.Histogram) (prometheus.Metric, bool) {
	var d dto.Metric
	if err := h.Write(&d); err != nil || d.Histogram == nil {
		return nil, false
	}
	src := d.Histogram.GetBucket()
	buckets := make(map[float64]uint64, len(walFsyncBounds))
	for _, b := range walFsyncBounds {
		var n uint64
		for _, sb := range src {
			if sb.GetUpperBound()/1e9 <= b {
				n = sb.GetCumulativeCount()
			}
		}
		buckets[b] = n
	}
	return prometheus.MustNewConstHistogram(pebbleWALFsyncDesc, d.Histogram.GetSampleCount(),
		d.Histogram.GetSampleSum()/1e9, buckets), true
}

// insecureTCP exports mdtd_tcp_insecure: 1 while TCP is served in plain
// text (--insecure), so that monitoring can flag it.
func (m *metrics) insecureTCP(on bool) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mdtd_tcp_insecure",
		Help: "1 if TCP is served without TLS (--insecure): clients are not authenticated.",
	})
	if on {
		g.Set(1)
	}
	m.reg.MustRegister(g)
}

var keyDesc = prometheus.NewDesc("mdt_changelog_signing_key_info",
	"The public key that signs changelog checkpoints (label pubkey, as lctl get_param mdd.*.changelog_pubkey prints it); always 1.",
	[]string{"device", "pubkey"}, nil)

// keyCollector exports the checkpoint signing key, which a rotation
// changes.
type keyCollector struct{ md *mdt.MDT }

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyDesc }

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	if k := c.md.Log().PublicKey(); k != nil {
		ch <- prometheus.MustNewConstMetric(keyDesc, prometheus.GaugeValue, 1, c.md.Device(), changelog.FormatPublicKey(k))
	}
}
