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
			r := c.cfg.Rollout
			if alarms != nil && (r.ProposeRollbackOnDrift || r.MaxEstimatedAccuracyDrop > 0) {
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

// AlarmQuery says which alarms to look for on a promoted version.
type AlarmQuery struct {
	Model           string
	Version         string // model version of the promoted stable
	PreviousVersion string // model version it replaced
	Since           time.Time
	// Drift asks for flagged drift reports on Version since Since.
	Drift bool
	// MaxAccuracyDrop > 0 asks for sources where Version's newest accuracy
	// estimate is more than this below PreviousVersion's last one before
	// Since, both from at least MinSamples predictions.
	MaxAccuracyDrop float64
	MinSamples      int
}

// AlarmSource reports monitoring alarms, one human-readable line each.
type AlarmSource interface {
	Alarms(ctx context.Context, q AlarmQuery) ([]string, error)
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
	r := c.cfg.Rollout
	alarms, err := src.Alarms(ctx, AlarmQuery{Model: c.cfg.Model, Version: c.version(st.Stable),
		PreviousVersion: c.version(st.Previous), Since: st.PromotedAt, Drift: r.ProposeRollbackOnDrift,
		MaxAccuracyDrop: r.MaxEstimatedAccuracyDrop, MinSamples: r.MinSamples})
	if err != nil || len(alarms) == 0 {
		return err
	}
	_, err = c.RequestRollback(ctx, "lookout-auto",
		fmt.Sprintf("alarms on %s since it became stable: %s", st.Stable, strings.Join(alarms, "; ")))
	return err
}

// version is the model version a backend serves: events carry it, not the
// backend's name.
func (c *Controller) version(backend string) string {
	if b, ok := c.cfg.Backend(backend); ok && b.Version != "" {
		return b.Version
	}
	return backend
}

// ClickHouseAlarms reads the drift job's reports and accuracy estimates.
type ClickHouseAlarms struct {
	conn     driver.Conn
	database string
}

// NewClickHouseAlarms reads database.drift_reports and database.drift_accuracy.
func NewClickHouseAlarms(conn driver.Conn, database string) *ClickHouseAlarms {
	return &ClickHouseAlarms{conn: conn, database: database}
}

// Alarms lists "drift <test> on <source>" for flagged drift reports and
// "estimated accuracy on <source> …" for accuracy drops, as q asks.
func (a *ClickHouseAlarms) Alarms(ctx context.Context, q AlarmQuery) ([]string, error) {
	var out []string
	if q.Drift {
		drift, err := a.drift(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, drift...)
	}
	if q.MaxAccuracyDrop > 0 {
		drops, err := a.accuracyDrops(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, drops...)
	}
	return out, nil
}

func (a *ClickHouseAlarms) drift(ctx context.Context, q AlarmQuery) ([]string, error) {
	rows, err := a.conn.Query(ctx, "SELECT DISTINCT source, test FROM "+a.database+
		".drift_reports WHERE model = ? AND model_version = ? AND flagged = 1 AND run_at >= toDateTime(?) ORDER BY source, test",
		q.Model, q.Version, q.Since.Unix())
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

// accuracyDrops compares, per source, the promoted version's newest ATC
// estimate with the previous version's last one before the promotion. ATC
// needs no labels, so it speaks hours or days before realised accuracy can.
func (a *ClickHouseAlarms) accuracyDrops(ctx context.Context, q AlarmQuery) ([]string, error) {
	rows, err := a.conn.Query(ctx, `SELECT source,
			argMaxIf(value, run_at, model_version = ? AND run_at >= toDateTime(?)) AS now,
			argMaxIf(value, run_at, model_version = ? AND run_at < toDateTime(?)) AS before,
			countIf(model_version = ? AND run_at >= toDateTime(?)) AS runs_now,
			countIf(model_version = ? AND run_at < toDateTime(?)) AS runs_before
		FROM `+a.database+`.drift_accuracy
		WHERE model = ? AND method = 'atc' AND n >= ? AND isFinite(value)
		GROUP BY source HAVING runs_now > 0 AND runs_before > 0 AND before - now > ?
		ORDER BY source`,
		q.Version, q.Since.Unix(), q.PreviousVersion, q.Since.Unix(), q.Version, q.Since.Unix(),
		q.PreviousVersion, q.Since.Unix(), q.Model, q.MinSamples, q.MaxAccuracyDrop)
	if err != nil {
		return nil, fmt.Errorf("query accuracy estimates: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var source string
		var now, before float64
		var runsNow, runsBefore uint64
		if err := rows.Scan(&source, &now, &before, &runsNow, &runsBefore); err != nil {
			return nil, fmt.Errorf("scan accuracy estimate: %w", err)
		}
		out = append(out, fmt.Sprintf("estimated accuracy on %s %.3f for %s, was %.3f for %s",
			source, now, q.Version, before, q.PreviousVersion))
	}
	return out, rows.Err()
}
