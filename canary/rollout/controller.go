package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
)

// Errors the API maps to HTTP statuses.
var (
	ErrConflict  = errors.New("conflict")
	ErrNotFound  = errors.New("not found")
	ErrForbidden = errors.New("forbidden")
	ErrInvalid   = errors.New("invalid request")
)

// Router is what the controller drives: *router.Router.
type Router interface {
	SetRoute(router.Route) error
	Window() *router.Window
	Backend(name string) (config.CanaryBackend, bool)
}

// Options configures a Controller.
type Options struct {
	Config   config.Canary
	Router   Router
	Audit    Audit
	Accuracy AccuracySource // nil: accuracy is always inconclusive
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
}

// Controller owns rollout and rollback state. One controller may run per
// audit table at a time (see the package documentation).
type Controller struct {
	cfg    config.Canary
	router Router
	audit  Audit
	acc    AccuracySource
	log    *slog.Logger
	now    func() time.Time

	mu sync.Mutex
	st State
	// baseline is stable's last well-sampled window, used when the canary
	// holds all traffic and stable has no fresh samples.
	baseline *router.ArmStats
}

// New rebuilds the state from the newest audit entry, or starts from the
// configured stable backend and records that, then applies the route.
func New(ctx context.Context, o Options) (*Controller, error) {
	c := &Controller{cfg: o.Config, router: o.Router, audit: o.Audit, acc: o.Accuracy, log: o.Log, now: o.Now}
	if c.now == nil {
		c.now = time.Now
	}
	st, ok, err := c.audit.Latest(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		c.st = st
		c.log.Info("rollout state restored from the audit log", "seq", st.Seq, "stable", st.Stable)
		if err := c.router.SetRoute(routeOf(st)); err != nil {
			return nil, fmt.Errorf("restore route (audit seq %d): %w", st.Seq, err)
		}
		return c, nil
	}
	if o.Config.Follow {
		// A follower never writes: it serves the configured stable until the
		// controller instance has recorded a state.
		c.st = State{Stable: o.Config.Stable}
		return c, c.router.SetRoute(routeOf(c.st))
	}
	err = c.change(ctx, "lookout", "init", "", "first start: stable from configuration", nil, func(s *State) error {
		s.Stable = o.Config.Stable
		return nil
	})
	return c, err
}

// routeOf derives the router's route from a state.
func routeOf(s State) router.Route {
	rt := router.Route{Stable: s.Stable}
	if r := s.Rollout; r.Active() {
		rt.Canary, rt.CanaryPercent, rt.ShadowPercent, rt.RolloutID = r.Canary, r.Weight(), r.ShadowPercent, r.ID
		if r.Weight() >= 100 {
			rt.ShadowPercent = 0
		}
	}
	return rt
}

// State returns a copy of the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return clone(c.st)
}

func clone(s State) State {
	b, _ := json.Marshal(s)
	var out State
	_ = json.Unmarshal(b, &out)
	return out
}

// change applies mutate to a copy of the state, appends the audit entry and
// only then publishes the state and the route: a change that cannot be
// recorded does not happen. Callers hold no lock.
func (c *Controller) change(ctx context.Context, actor, action, requestID, reason string, a *Analysis, mutate func(*State) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changeLocked(ctx, actor, action, requestID, reason, a, mutate)
}

func (c *Controller) changeLocked(ctx context.Context, actor, action, requestID, reason string, a *Analysis, mutate func(*State) error) error {
	if c.cfg.Follow {
		return fmt.Errorf("%w: this router follows the audit log (canary.follow); make changes on the controller instance", ErrConflict)
	}
	next := clone(c.st)
	if err := mutate(&next); err != nil {
		return err
	}
	next.Seq = c.st.Seq + 1
	rt := routeOf(next)
	e := Entry{Seq: next.Seq, At: c.now(), Actor: actor, Action: action, RequestID: requestID, Reason: reason,
		Stable: rt.Stable, Canary: rt.Canary, Percent: rt.CanaryPercent, Metrics: a, State: next}
	if next.Rollout != nil {
		e.RolloutID = next.Rollout.ID
	}
	if err := c.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record %s: %w", action, err)
	}
	if err := c.router.SetRoute(rt); err != nil {
		// The entry is written; the next start applies it. Report loudly.
		c.log.Error("route change recorded but not applied", "action", action, "err", err)
		return err
	}
	if routeOf(c.st) != rt {
		c.router.Window().Reset()
	}
	c.st = next
	c.log.Info("canary state change", "action", action, "actor", actor, "stable", rt.Stable, "canary", rt.Canary,
		"canary_percent", rt.CanaryPercent, "reason", reason)
	return nil
}

func newID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// StartRequest describes a new rollout; zero fields take the configured plan.
type StartRequest struct {
	Canary        string        `json:"canary"`
	Steps         []float64     `json:"steps,omitempty"`
	StepPause     time.Duration `json:"step_pause,omitempty"`
	ShadowPercent *float64      `json:"shadow_percent,omitempty"`
	Reason        string        `json:"reason,omitempty"`
}

// Start begins a rollout of req.Canary against the current stable.
func (c *Controller) Start(ctx context.Context, actor string, req StartRequest) (Rollout, error) {
	if _, ok := c.router.Backend(req.Canary); !ok {
		return Rollout{}, fmt.Errorf("%w: canary backend %q is not configured", ErrInvalid, req.Canary)
	}
	plan := c.cfg.Rollout
	r := Rollout{ID: newID("ro-"), Canary: req.Canary, Status: StatusRunning, Steps: plan.Steps,
		StepPause: plan.StepPause, ShadowPercent: plan.ShadowPercent, StartedBy: actor, Reason: req.Reason}
	if len(req.Steps) > 0 {
		r.Steps = req.Steps
	}
	if req.StepPause > 0 {
		r.StepPause = req.StepPause
	}
	if req.ShadowPercent != nil {
		r.ShadowPercent = *req.ShadowPercent
	}
	check := config.Rollout{Steps: r.Steps, ShadowPercent: r.ShadowPercent, Interval: 1, RollbackApprovalTTL: 1,
		AlarmCheckInterval: 1, MinSamples: 1, FailureLimit: 1, MinLabelled: 1}
	if errs := check.Validate(); len(errs) > 0 {
		return Rollout{}, fmt.Errorf("%w: %v", ErrInvalid, errors.Join(errs...))
	}
	err := c.change(ctx, actor, "rollout_start", "", req.Reason, nil, func(s *State) error {
		if s.Rollout.Active() {
			return fmt.Errorf("%w: rollout %s is still %s", ErrConflict, s.Rollout.ID, s.Rollout.Status)
		}
		if req.Canary == s.Stable {
			return fmt.Errorf("%w: %s is already stable", ErrInvalid, req.Canary)
		}
		now := c.now()
		r.Baseline, r.Started, r.StepStarted = s.Stable, now, now
		s.Rollout = &r
		return nil
	})
	return r, err
}

// Act applies an operator action (pause, resume, promote, abort) to the
// running rollout id.
func (c *Controller) Act(ctx context.Context, actor, action, id, reason string) error {
	return c.change(ctx, actor, "rollout_"+action, "", reason, nil, func(s *State) error {
		r := s.Rollout
		if r == nil || r.ID != id {
			return fmt.Errorf("%w: no rollout %s", ErrNotFound, id)
		}
		if !r.Active() {
			return fmt.Errorf("%w: rollout %s is %s", ErrConflict, id, r.Status)
		}
		switch action {
		case "pause":
			r.Status = StatusPaused
		case "resume":
			r.Status = StatusRunning
		case "promote":
			promote(s, c.now())
		case "abort":
			r.Status = StatusAborted
		default:
			return fmt.Errorf("%w: unknown action %q", ErrInvalid, action)
		}
		return nil
	})
}

// promote makes the canary stable and keeps the old stable as rollback target.
func promote(s *State, now time.Time) {
	s.Previous, s.Stable = s.Stable, s.Rollout.Canary
	s.PromotedAt = now
	s.Rollout.Status = StatusPromoted
}

// RequestRollback asks to make the previous stable serve again. It changes
// no traffic until an approver approves.
func (c *Controller) RequestRollback(ctx context.Context, actor, reason string) (Rollback, error) {
	var rb Rollback
	err := c.change(ctx, actor, "rollback_request", "", reason, nil, func(s *State) error {
		if s.Previous == "" {
			return fmt.Errorf("%w: there is no previous stable version to roll back to", ErrConflict)
		}
		for _, p := range s.Rollbacks {
			if p.Status == RollbackPending && c.now().Before(p.Expires) {
				return fmt.Errorf("%w: rollback %s is already pending", ErrConflict, p.ID)
			}
		}
		now := c.now()
		rb = Rollback{ID: newID("rb-"), From: s.Stable, To: s.Previous, Status: RollbackPending, RequestedBy: actor,
			Reason: reason, Requested: now, Expires: now.Add(c.cfg.Rollout.RollbackApprovalTTL)}
		s.Rollbacks = append(s.Rollbacks, rb)
		if len(s.Rollbacks) > 20 {
			s.Rollbacks = s.Rollbacks[len(s.Rollbacks)-20:]
		}
		return nil
	})
	return rb, err
}

// Decide approves or rejects a pending rollback. Only approvers decide, and
// never on their own request; an expired request can no longer be approved.
func (c *Controller) Decide(ctx context.Context, p auth.Principal, id string, approve bool, note string) error {
	if !p.Has(auth.RoleApprover) {
		return fmt.Errorf("%w: %s does not hold the approver role", ErrForbidden, p.Name)
	}
	action := "rollback_reject"
	if approve {
		action = "rollback_approve"
	}
	return c.change(ctx, p.Name, action, id, note, nil, func(s *State) error {
		i := findRollback(s, id)
		if i < 0 {
			return fmt.Errorf("%w: no rollback request %s", ErrNotFound, id)
		}
		rb := &s.Rollbacks[i]
		if rb.Status != RollbackPending {
			return fmt.Errorf("%w: rollback %s is %s", ErrConflict, id, rb.Status)
		}
		if !c.now().Before(rb.Expires) {
			return fmt.Errorf("%w: rollback %s has expired", ErrConflict, id)
		}
		if rb.RequestedBy == p.Name {
			return fmt.Errorf("%w: %s requested rollback %s and cannot approve or reject it", ErrForbidden, p.Name, id)
		}
		rb.DecidedBy, rb.Decided, rb.Note = p.Name, c.now(), note
		if !approve {
			rb.Status = RollbackRejected
			return nil
		}
		if s.Stable != rb.From {
			return fmt.Errorf("%w: stable is %s now, not %s as requested", ErrConflict, s.Stable, rb.From)
		}
		rb.Status = RollbackApproved
		if s.Rollout.Active() {
			s.Rollout.Status = StatusAborted
		}
		s.Stable, s.Previous, s.PromotedAt = rb.To, rb.From, c.now()
		return nil
	})
}

func findRollback(s *State, id string) int {
	for i := range s.Rollbacks {
		if s.Rollbacks[i].ID == id {
			return i
		}
	}
	return -1
}
