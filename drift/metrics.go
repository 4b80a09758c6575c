package drift

import "github.com/prometheus/client_golang/prometheus"

// Metrics export the latest report of every scope and test.
type Metrics struct {
	statistic *prometheus.GaugeVec
	pValue    *prometheus.GaugeVec
	effect    *prometheus.GaugeVec
	flagged   *prometheus.GaugeVec
	samples   *prometheus.GaugeVec
	runs      *prometheus.CounterVec
	lastRun   prometheus.Gauge
}

// NewMetrics registers the drift metrics with reg (nil for none). Labels are
// bounded: model, source and test, never event data.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"model", "source", "test"}
	m := &Metrics{
		statistic: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_statistic", Help: "Test statistic of the latest drift run (MMD² or chi-square).",
		}, labels),
		pValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_p_value", Help: "p-value of the latest drift run.",
		}, labels),
		effect: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_effect_size", Help: "Effect size of the latest drift run (MMD² or Jensen–Shannon distance).",
		}, labels),
		flagged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_flagged", Help: "1 if the latest drift run flagged drift, else 0.",
		}, labels),
		samples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_drift_window_samples", Help: "Samples in the reference and current windows of the latest run.",
		}, append(labels, "window")),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_drift_runs_total", Help: "Drift job runs by outcome (ok, error).",
		}, []string{"outcome"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lookout_drift_last_run_timestamp_seconds", Help: "Unix time of the last successful drift run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.statistic, m.pValue, m.effect, m.flagged, m.samples, m.runs, m.lastRun)
	}
	return m
}

func (m *Metrics) export(r Report) {
	l := prometheus.Labels{"model": r.Model, "source": r.Source, "test": r.Test}
	flagged := 0.0
	if r.Flagged() {
		flagged = 1
	}
	m.flagged.With(l).Set(flagged)
	m.samples.WithLabelValues(r.Model, r.Source, r.Test, "reference").Set(float64(r.NRef))
	m.samples.WithLabelValues(r.Model, r.Source, r.Test, "current").Set(float64(r.NCur))
	if r.Status == StatusInsufficient {
		return
	}
	m.statistic.With(l).Set(r.Statistic)
	m.pValue.With(l).Set(r.PValue)
	m.effect.With(l).Set(r.Effect)
}
