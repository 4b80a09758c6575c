package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorReflectsState(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := &Controller{now: func() time.Time { return now }, st: State{
		Stable:  "v1",
		Rollout: &Rollout{ID: "ro-1", Canary: "v2", Status: StatusRunning, Steps: []float64{5, 25, 50}, Step: 1},
		Rollbacks: []Rollback{
			{ID: "rb-1", Status: RollbackRejected, Requested: now.Add(-10 * time.Hour)},
			{ID: "rb-2", Status: RollbackPending, Requested: now.Add(-2 * time.Hour)},
			{ID: "rb-3", Status: RollbackPending, Requested: now.Add(-30 * time.Minute)},
		},
	}}
	want := `
# HELP lookout_rollout_rollback_pending_age_seconds How long the oldest pending rollback request has waited (0 when none).
# TYPE lookout_rollout_rollback_pending_age_seconds gauge
lookout_rollout_rollback_pending_age_seconds 7200
# HELP lookout_rollout_rollbacks_pending Rollback requests waiting for an approver.
# TYPE lookout_rollout_rollbacks_pending gauge
lookout_rollout_rollbacks_pending 2
# HELP lookout_rollout_status 1 for the status of the current (or most recent) rollout: running, paused, promoted or aborted.
# TYPE lookout_rollout_status gauge
lookout_rollout_status{status="aborted"} 0
lookout_rollout_status{status="paused"} 0
lookout_rollout_status{status="promoted"} 0
lookout_rollout_status{status="running"} 1
# HELP lookout_rollout_step Index of the current step of the active rollout in its plan (0-based; -1 without an active rollout).
# TYPE lookout_rollout_step gauge
lookout_rollout_step 1
`
	if err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	c.st.Rollout.Status = StatusAborted
	c.st.Rollbacks = nil
	want = `
# HELP lookout_rollout_rollback_pending_age_seconds How long the oldest pending rollback request has waited (0 when none).
# TYPE lookout_rollout_rollback_pending_age_seconds gauge
lookout_rollout_rollback_pending_age_seconds 0
# HELP lookout_rollout_step Index of the current step of the active rollout in its plan (0-based; -1 without an active rollout).
# TYPE lookout_rollout_step gauge
lookout_rollout_step -1
`
	err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(want),
		"lookout_rollout_rollback_pending_age_seconds", "lookout_rollout_step")
	if err != nil {
		t.Fatal(err)
	}
}
