package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumer metrics shared by every stage; the stage label
// tells them apart.
type Metrics struct {
	messages     *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	retries      *prometheus.CounterVec
	batchSize    *prometheus.HistogramVec
	flushSeconds *prometheus.HistogramVec
	lag          *prometheus.GaugeVec
	lastCommit   *prometheus.GaugeVec
}

// NewMetrics creates the consumer metrics and registers them with reg (which
// may be nil, for tests that do not look at metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_consumer_messages_total",
			Help: "Messages consumed and committed, by stage and outcome (stored, skipped, dead_lettered).",
		}, []string{"stage", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_consumer_dead_letters_total",
			Help: "Messages refused by a stage's decoder, by reason.",
		}, []string{"stage", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_consumer_retries_total",
			Help: "Failed attempts to write dead letters, store a batch or commit offsets.",
		}, []string{"stage", "step"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lookout_consumer_batch_messages",
			Help:    "Messages per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"stage"}),
		flushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lookout_consumer_flush_duration_seconds",
			Help:    "Time from a write's first batch reaching the store to the write's commit (one batch, or up to batches_per_insert for ingest), retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 12),
		}, []string{"stage"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_consumer_lag_messages",
			Help: "Messages behind the partition's high watermark at the last fetch.",
		}, []string{"stage", "partition"}),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_consumer_last_commit_timestamp_seconds",
			Help: "Unix time of the stage's last successful commit.",
		}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.deadLetters, m.retries, m.batchSize, m.flushSeconds, m.lag, m.lastCommit)
	}
	return m
}

// Retries returns the retry counter of one stage and step ("dead-letter
// write", "store", "commit"), for tests and embedding programs.
func (m *Metrics) Retries(stage, step string) prometheus.Counter {
	return m.retries.WithLabelValues(stage, step)
}
