package queue

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the queue's Prometheus metrics. Gauges are computed at scrape
// time from the queue itself, so they can never drift from it.
type Metrics struct {
	labelled  prometheus.Counter
	expiries  prometheus.Counter
	skips     prometheus.Counter
	agreement *prometheus.CounterVec
	published prometheus.Counter

	depth  *prometheus.Desc
	oldest *prometheus.Desc
	q      *Queue
}

// NewMetrics registers the queue metrics with reg (nil for none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		labelled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookout_al_items_labelled_total",
			Help: "Queue items labelled (submitted); rate()*3600 is items labelled per hour.",
		}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookout_al_lease_expiries_total",
			Help: "Leases that ran out before the annotator submitted, released or skipped.",
		}),
		skips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookout_al_items_skipped_total",
			Help: "Items skipped by an annotator.",
		}),
		agreement: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_al_label_agreement_total",
			Help: "Submitted labels by whether they match the model's predicted class (outcome agree|disagree).",
		}, []string{"outcome"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookout_al_labels_published_total",
			Help: "Labels published to the labels topic.",
		}),
		depth: prometheus.NewDesc("lookout_al_queue_items", "Queue items by state.", []string{"state"}, nil),
		oldest: prometheus.NewDesc("lookout_al_oldest_unlabelled_age_seconds",
			"Age of the oldest picked item not yet labelled or discarded (0 when none).", nil, nil),
	}
	if reg != nil {
		reg.MustRegister(m.labelled, m.expiries, m.skips, m.agreement, m.published, m)
	}
	return m
}

func (m *Metrics) attach(q *Queue) { m.q = q }

func (m *Metrics) observe(ev Event, e *entry) {
	if m == nil {
		return
	}
	switch ev.Kind {
	case KindSubmitted:
		m.labelled.Inc()
		if ev.Label != "" && e.PredictedClass != "" {
			outcome := "disagree"
			if ev.Label == e.PredictedClass {
				outcome = "agree"
			}
			m.agreement.WithLabelValues(outcome).Inc()
		}
	case KindExpired:
		m.expiries.Inc()
	case KindSkipped:
		m.skips.Inc()
	case KindPublished:
		m.published.Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.depth
	ch <- m.oldest
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	q := m.q
	if q == nil {
		return
	}
	q.mu.Lock()
	counts := q.countsLocked()
	var oldest time.Time
	for _, e := range q.items {
		if (e.state == Available || e.state == Leased) && (oldest.IsZero() || e.PickedAt.Before(oldest)) {
			oldest = e.PickedAt
		}
	}
	now := q.opts.Now()
	q.mu.Unlock()
	for _, s := range States {
		ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	age := 0.0
	if !oldest.IsZero() {
		age = now.Sub(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, age)
}
