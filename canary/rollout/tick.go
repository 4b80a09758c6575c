package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Run analyses every interval and checks alarms until ctx is cancelled; a
// follower instead applies the controller's newest recorded state.
func (c *Controller) Run(ctx context.Context, alarms AlarmSource) {
	if c.cfg.Follow {
		c.follow(ctx)
		return
	}
	tick := time.NewTicker(c.cfg.Rollout.Interval)
	defer tick.Stop()
	alarm := time.NewTicker(c.cfg.Rollout.AlarmCheckInterval)
	defer alarm.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := c.Tick(ctx); err != nil {
				c.log.Error("rollout analysis", "err", err)
			}
		case <-alarm.C:
			if alarms != nil && c.cfg.Rollout.ProposeRollbackOnDrift {
				if err := c.CheckAlarms(ctx, alarms); err != nil {
					c.log.Error("rollback alarm check", "err", err)
				}
			}
		}
	}
}

func (c *Controller) follow(ctx context.Context) {
	t := time.NewTicker(c.cfg.FollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Sync(ctx); err != nil {
				c.log.Error("follow the audit log", "err", err)
			}
		}
	}
}

// Sync applies the newest state in the audit log when it is newer than the
// one held (followers call it every follow_interval).
func (c *Controller) Sync(ctx context.Context) error {
	st, ok, err := c.audit.Latest(ctx)
	if err != nil || !ok {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.Seq <= c.st.Seq {
		return nil
	}
	rt := routeOf(st)
	if err := c.router.SetRoute(rt); err != nil {
		return fmt.Errorf("apply audit entry %d: %w", st.Seq, err)
	}
	if routeOf(c.st) != rt {
		c.router.Window().Reset()
		c.log.Info("route changed by the controller", "seq", st.Seq, "stable", rt.Stable, "canary", rt.Canary,
			"canary_percent", rt.CanaryPercent)
	}
	c.st = st
	return nil
}

// Tick expires stale rollback requests and analyses the running rollout:
// a metric failing failure_limit times in a row aborts it (no approval
// needed: aborting only returns traffic to stable); a passing analysis after
// the step's pause advances it, and passing the last step promotes.
func (c *Controller) Tick(ctx context.Context) error {
	if c.cfg.Follow {
		return c.Sync(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.expireLocked(ctx); err != nil {
		return err
	}
	r := c.st.Rollout
	if r == nil || r.Status != StatusRunning {
		return nil
	}
	th := c.cfg.Rollout
	snap, _ := c.router.Window().Snapshot()
	stable := snap["stable"]
	if stable.Requests < th.MinSamples && c.baseline != nil {
		stable = *c.baseline
	}
	var acc map[string]Labelled
	if c.acc != nil {
		var err error
		if acc, err = c.acc.Accuracy(ctx, c.cfg.Model, r.ID); err != nil {
			c.log.Warn("labelled accuracy unavailable", "rollout", r.ID, "err", err)
		}
	}
	a := analyse(th, stable, snap["canary"], acc)
	a.At = c.now()
	failures := map[string]int{}
	var exceeded []string
	for _, m := range a.Metrics {
		switch m.Status {
		case Fail:
			failures[m.Name] = r.Failures[m.Name] + 1
			if failures[m.Name] >= th.FailureLimit {
				exceeded = append(exceeded, m.Name)
			}
		case Inconclusive:
			if n := r.Failures[m.Name]; n > 0 {
				failures[m.Name] = n
			}
		}
	}
	switch {
	case len(exceeded) > 0:
		reason := "analysis failed: " + strings.Join(exceeded, ", ")
		return c.changeLocked(ctx, "lookout", "rollout_abort_auto", "", reason, &a, func(s *State) error {
			s.Rollout.Status, s.Rollout.Failures, s.Rollout.LastAnalysis = StatusAborted, failures, &a
			return nil
		})
	case a.Verdict == Pass && !a.At.Before(r.StepStarted.Add(r.StepPause)):
		if stable.Requests >= th.MinSamples {
			c.baseline = &stable
		}
		last := r.Step >= len(r.Steps)-1
		action, reason := "rollout_step", fmt.Sprintf("analysis passed at %v%%, advancing", r.Weight())
		if last {
			action, reason = "rollout_promote_auto", "analysis passed at every step"
		}
		return c.changeLocked(ctx, "lookout", action, "", reason, &a, func(s *State) error {
			s.Rollout.Failures, s.Rollout.LastAnalysis, s.Rollout.Passed = nil, &a, false
			if last {
				promote(s, a.At)
				return nil
			}
			s.Rollout.Step++
			s.Rollout.StepStarted = a.At
			return nil
		})
	default:
		// Not a traffic change: kept in memory, stored with the next entry.
		r.Failures, r.LastAnalysis = failures, &a
		r.Passed = r.Passed || a.Verdict == Pass
		return nil
	}
}

func (c *Controller) expireLocked(ctx context.Context) error {
	now := c.now()
	for _, rb := range c.st.Rollbacks {
		if rb.Status != RollbackPending || now.Before(rb.Expires) {
			continue
		}
		err := c.changeLocked(ctx, "lookout", "rollback_expire", rb.ID, "no approver decided in time", nil, func(s *State) error {
			s.Rollbacks[findRollback(s, rb.ID)].Status = RollbackExpired
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// AlarmSource reports monitoring alarms on a model since a time.
type AlarmSource interface {
	Alarms(ctx context.Context, model string, since time.Time) ([]string, error)
}

// CheckAlarms proposes a rollback of the promoted stable when alarms fired
// since its promotion, once per promotion; an approver still has to say yes.
func (c *Controller) CheckAlarms(ctx context.Context, src AlarmSource) error {
	st := c.State()
	if st.Previous == "" || st.PromotedAt.IsZero() {
		return nil
	}
	for _, rb := range st.Rollbacks {
		if !rb.Requested.Before(st.PromotedAt) {
			return nil // already proposed or requested for this promotion
		}
	}
	alarms, err := src.Alarms(ctx, c.cfg.Model, st.PromotedAt)
	if err != nil || len(alarms) == 0 {
		return err
	}
	_, err = c.RequestRollback(ctx, "lookout-auto",
		fmt.Sprintf("alarms on %s since it became stable: %s", st.Stable, strings.Join(alarms, "; ")))
	return err
}

// DriftAlarms reads flagged drift reports from ClickHouse.
type DriftAlarms struct {
	conn     driver.Conn
	database string
}

// NewDriftAlarms reads database.drift_reports.
func NewDriftAlarms(conn driver.Conn, database string) *DriftAlarms {
	return &DriftAlarms{conn: conn, database: database}
}

// Alarms lists "drift <test> on <source>" for flagged reports since since.
func (d *DriftAlarms) Alarms(ctx context.Context, model string, since time.Time) ([]string, error) {
	rows, err := d.conn.Query(ctx, "SELECT DISTINCT source, test FROM "+d.database+
		".drift_reports WHERE model = ? AND flagged = 1 AND run_at >= toDateTime(?) ORDER BY source, test",
		model, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("query drift alarms: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var source, test string
		if err := rows.Scan(&source, &test); err != nil {
			return nil, fmt.Errorf("scan drift alarm: %w", err)
		}
		out = append(out, "drift "+test+" on "+source)
	}
	return out, rows.Err()
}
