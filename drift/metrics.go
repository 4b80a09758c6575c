package drift

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics export the latest report of every scope and test.
type Metrics struct {
	statistic *prometheus.GaugeVec
	pValue    *prometheus.GaugeVec
	effect    *prometheus.GaugeVec
	flagged   *prometheus.GaugeVec
	samples   *prometheus.GaugeVec
	estimated *prometheus.GaugeVec
	realised  *prometheus.GaugeVec
	runs      *prometheus.CounterVec
	lastRun   prometheus.Gauge
}

// NewMetrics registers the drift metrics with reg (nil for none). Labels are
// bounded: model, version, source and test (a fixed list), never event data.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"model", "version", "source", "test"}
	scope := []string{"model", "version", "source"}
	m := &Metrics{
		statistic: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_statistic", Help: "Test statistic of the latest drift run (chi-square, KS D, MMD²).",
		}, labels),
		pValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_p_value", Help: "p-value of the latest drift run (Benjamini–Hochberg adjusted for KS families).",
		}, labels),
		effect: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_effect_size", Help: "Effect size of the latest drift run (Jensen–Shannon distance, KS D or MMD²).",
		}, labels),
		flagged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_flagged", Help: "1 if the latest drift run flagged drift, else 0.",
		}, labels),
		samples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_window_samples", Help: "Samples in the reference and current windows of the latest run.",
		}, append(labels, "window")),
		estimated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_estimated_accuracy",
			Help: "Accuracy of the current window estimated without labels (method avg_confidence or atc).",
		}, append(scope, "method")),
		realised: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_realised_accuracy", Help: "Accuracy from labels in the current or reference window.",
		}, append(scope, "window")),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_drift_runs_total", Help: "Drift job runs by outcome (ok, error).",
		}, []string{"outcome"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lookout_drift_last_run_timestamp_seconds", Help: "Unix time of the last successful drift run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.statistic, m.pValue, m.effect, m.flagged, m.samples, m.estimated, m.realised, m.runs, m.lastRun)
	}
	return m
}

func (m *Metrics) export(r Report) {
	l := prometheus.Labels{"model": r.Model, "version": r.Version, "source": r.Source, "test": r.Test}
	flagged := 0.0
	if r.Flagged() {
		flagged = 1
	}
	m.flagged.With(l).Set(flagged)
	m.samples.WithLabelValues(r.Model, r.Version, r.Source, r.Test, "reference").Set(float64(r.NRef))
	m.samples.WithLabelValues(r.Model, r.Version, r.Source, r.Test, "current").Set(float64(r.NCur))
	if r.Status == StatusInsufficient {
		return
	}
	m.statistic.With(l).Set(r.Statistic)
	if !math.IsNaN(r.PValue) { // the sequential CUSUM has no p-value
		m.pValue.With(l).Set(r.PValue)
	}
	m.effect.With(l).Set(r.Effect)
}

// exportAccuracy sets the accuracy gauges; unknown values (no labels, no
// data) leave the series out rather than exporting NaN.
func (m *Metrics) exportAccuracy(sc Scope, a Accuracy) {
	set := func(g *prometheus.GaugeVec, v float64, kind string) {
		if math.IsNaN(v) {
			g.DeleteLabelValues(sc.Model, sc.Version, sc.Source, kind)
			return
		}
		g.WithLabelValues(sc.Model, sc.Version, sc.Source, kind).Set(v)
	}
	set(m.estimated, a.AvgConfidence, AccuracyAvgConfidence)
	set(m.estimated, a.ATC, AccuracyATC)
	set(m.realised, a.Realised, "current")
	set(m.realised, a.RefRealised, "reference")
}
