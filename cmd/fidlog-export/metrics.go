package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the exporter's Prometheus metrics, in a private registry.
type metrics struct {
	reg        *prometheus.Registry
	delivered  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	lagRecords *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
	cleared    *prometheus.GaugeVec
	lost       *prometheus.GaugeVec
	sinkUp     *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fidlog_export_records_delivered_total",
			Help: "Records a sink committed (fsync, PubAck or flushed connection), by sink.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fidlog_export_sink_failures_total",
			Help: "Failed deliveries to a sink (each is retried with backoff; nothing is cleared meanwhile), by sink.",
		}, []string{"sink"}),
		lagRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fidlog_export_lag_records",
			Help: "Records the MDT has written that every sink has not yet committed, by device.",
		}, []string{"device"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fidlog_export_lag_seconds",
			Help: "While lagging, seconds since the last record every sink committed was written; 0 when caught up.",
		}, []string{"device"}),
		cleared: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fidlog_export_cleared_index",
			Help: "The last changelog index the exporter cleared on the MDT, by device.",
		}, []string{"device"}),
		lost: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fidlog_export_evicted_lost_records",
			Help: "Records lost to the exporter because the MDT's changelog GC evicted its user, by device.",
		}, []string{"device"}),
	}
	m.sinkUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fidlog_export_sink_up",
		Help: "1 if the sink's last delivery succeeded, 0 while it is failing, by sink.",
	}, []string{"sink"})
	m.reg.MustRegister(m.delivered, m.failed, m.lagRecords, m.lagSeconds, m.cleared, m.lost, m.sinkUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
