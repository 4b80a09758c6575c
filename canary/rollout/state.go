// Package rollout is the canary controller: it moves traffic through a plan
// of steps, analyses canary against stable at every interval, aborts a bad
// canary on its own, promotes a good one, and rolls a promoted version back
// only when an approver (not the requester) says yes. Every change is
// appended to an audit log first and applied to the router second, and the
// state is rebuilt from the newest audit entry at start.
package rollout

import (
	"time"
)

// Rollout statuses.
const (
	StatusRunning  = "running"
	StatusPaused   = "paused"
	StatusPromoted = "promoted"
	StatusAborted  = "aborted"
)

// Rollback request statuses.
const (
	RollbackPending  = "pending"
	RollbackApproved = "approved"
	RollbackRejected = "rejected"
	RollbackExpired  = "expired"
)

// State is everything the controller knows; it is stored whole with every
// audit entry.
type State struct {
	// Seq numbers audit entries; the state of entry n has Seq n.
	Seq uint64 `json:"seq"`
	// Stable serves all traffic outside a rollout's canary share.
	Stable string `json:"stable"`
	// Previous is the rollback target: the stable before the last promotion.
	Previous string `json:"previous,omitempty"`
	// PromotedAt is when Stable became stable through a promotion or rollback.
	PromotedAt time.Time `json:"promoted_at,omitzero"`
	// Rollout is the current or most recent rollout.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Rollbacks holds pending and recently decided requests (newest last).
	Rollbacks []Rollback `json:"rollbacks,omitempty"`
}

// Rollout is one progressive rollout of a canary backend.
type Rollout struct {
	ID            string        `json:"id"`
	Canary        string        `json:"canary"`
	Baseline      string        `json:"baseline"`
	Status        string        `json:"status"`
	Steps         []float64     `json:"steps"`
	StepPause     time.Duration `json:"step_pause"`
	ShadowPercent float64       `json:"shadow_percent"`
	Step          int           `json:"step"`
	StepStarted   time.Time     `json:"step_started"`
	Started       time.Time     `json:"started"`
	StartedBy     string        `json:"started_by"`
	// Failures counts consecutive failed analyses per metric.
	Failures map[string]int `json:"failures,omitempty"`
	// Passed reports whether the current step has had a passing analysis.
	Passed       bool      `json:"passed"`
	LastAnalysis *Analysis `json:"last_analysis,omitempty"`
	Reason       string    `json:"reason,omitempty"`
}

// Weight is the canary's current share in percent.
func (r *Rollout) Weight() float64 {
	if r == nil || (r.Status != StatusRunning && r.Status != StatusPaused) || len(r.Steps) == 0 {
		return 0
	}
	return r.Steps[min(r.Step, len(r.Steps)-1)]
}

// Active reports whether the rollout still holds traffic.
func (r *Rollout) Active() bool {
	return r != nil && (r.Status == StatusRunning || r.Status == StatusPaused)
}

// Rollback is a request to make the previous stable serve again.
type Rollback struct {
	ID          string    `json:"id"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	Status      string    `json:"status"`
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	Requested   time.Time `json:"requested"`
	Expires     time.Time `json:"expires"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	Decided     time.Time `json:"decided,omitzero"`
	Note        string    `json:"note,omitempty"`
}

// Analysis is one comparison of canary against stable.
type Analysis struct {
	At      time.Time `json:"at"`
	Verdict string    `json:"verdict"` // pass | fail | inconclusive
	Metrics []Metric  `json:"metrics"`
}

// Metric is one analysed quantity.
type Metric struct {
	Name      string  `json:"name"`
	Stable    float64 `json:"stable"`
	Canary    float64 `json:"canary"`
	Value     float64 `json:"value"` // what the threshold applies to
	Threshold float64 `json:"threshold"`
	Status    string  `json:"status"` // pass | fail | inconclusive
	Samples   int     `json:"samples"`
	Detail    string  `json:"detail,omitempty"`
}

// Entry is one audit record.
type Entry struct {
	Seq       uint64    `json:"seq"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	RolloutID string    `json:"rollout_id,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Stable    string    `json:"stable"`
	Canary    string    `json:"canary,omitempty"`
	Percent   float64   `json:"canary_percent"`
	Metrics   *Analysis `json:"metrics,omitempty"`
	State     State     `json:"-"`
}
