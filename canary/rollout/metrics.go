package rollout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The rollout's state as Prometheus sees it. They are read from the state at
// scrape time, so they are right after a restart too (the state is rebuilt
// from the audit log) and need no bookkeeping at each change.
var (
	descStatus = prometheus.NewDesc("lookout_rollout_status",
		"1 for the status of the current (or most recent) rollout: running, paused, promoted or aborted.",
		[]string{"status"}, nil)
	descStep = prometheus.NewDesc("lookout_rollout_step",
		"Index of the current step of the active rollout in its plan (0-based; -1 without an active rollout).", nil, nil)
	descPending = prometheus.NewDesc("lookout_rollout_rollbacks_pending",
		"Rollback requests waiting for an approver.", nil, nil)
	descPendingAge = prometheus.NewDesc("lookout_rollout_rollback_pending_age_seconds",
		"How long the oldest pending rollback request has waited (0 when none).", nil, nil)
)

var rolloutStatuses = []string{StatusRunning, StatusPaused, StatusPromoted, StatusAborted}

// Collector exports the controller's state; register it with the router's
// registry.
func (c *Controller) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Controller }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStatus
	ch <- descStep
	ch <- descPending
	ch <- descPendingAge
}

func (col collector) Collect(ch chan<- prometheus.Metric) {
	st := col.c.State()
	now := col.c.now()
	for _, s := range rolloutStatuses {
		v := 0.0
		if st.Rollout != nil && st.Rollout.Status == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, v, s)
	}
	step := -1.0
	if st.Rollout.Active() {
		step = float64(st.Rollout.Step)
	}
	ch <- prometheus.MustNewConstMetric(descStep, prometheus.GaugeValue, step)
	pending, oldest := 0, 0.0
	for _, r := range st.Rollbacks {
		if r.Status != RollbackPending {
			continue
		}
		pending++
		oldest = max(oldest, now.Sub(r.Requested).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(descPendingAge, prometheus.GaugeValue, oldest)
}
