package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func TestGoodCanaryIsPromoted(t *testing.T) {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "good", 0.9)
	e := newEnv(t, testCanaryConfig(stable, canary))
	ro, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2", Reason: "new weights"})
	if err != nil {
		t.Fatal(err)
	}
	arms := e.traffic(200)
	if arms["v1"] < 60 || arms["v2"] < 60 {
		t.Fatalf("50%% step split 200 cameras as %v", arms)
	}
	e.tick()
	st := e.c.State()
	if st.Rollout.Step != 1 || st.Rollout.Weight() != 100 || st.Rollout.LastAnalysis.Verdict != Pass {
		t.Fatalf("after a passing analysis: step %d weight %v analysis %+v", st.Rollout.Step, st.Rollout.Weight(), st.Rollout.LastAnalysis)
	}
	if arms := e.traffic(100); arms["v2"] != 100 {
		t.Fatalf("at 100%% the canary served %v", arms)
	}
	e.tick() // stable has no fresh traffic: compared with its baseline
	st = e.c.State()
	if st.Stable != "v2" || st.Previous != "v1" || st.Rollout.Status != StatusPromoted || st.Rollout.ID != ro.ID {
		t.Fatalf("not promoted: %+v %+v", st, st.Rollout)
	}
	if rt := e.router.Route(); rt.Stable != "v2" || rt.Canary != "" {
		t.Errorf("route after promotion %+v", rt)
	}
	want := []string{"init", "rollout_start", "rollout_step", "rollout_promote_auto"}
	if got := e.actions(); !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func abortedFor(t *testing.T, e *env, metric string) {
	t.Helper()
	st := e.c.State()
	if st.Rollout.Status != StatusAborted || st.Stable != "v1" {
		t.Fatalf("rollout %s, stable %s; want aborted on v1 (analysis %+v)", st.Rollout.Status, st.Stable, st.Rollout.LastAnalysis)
	}
	if rt := e.router.Route(); rt.Canary != "" || rt.CanaryPercent != 0 {
		t.Errorf("route after abort %+v", rt)
	}
	entries, _ := e.audit.List(context.Background(), 1)
	if entries[0].Action != "rollout_abort_auto" || entries[0].Metrics == nil || entries[0].Reason != "analysis failed: "+metric {
		t.Errorf("last audit entry %+v, want an automatic abort on %s with the analysis", entries[0], metric)
	}
}

func TestErroringCanaryIsAborted(t *testing.T) {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "good", 0.9)
	canary.status.Store(500)
	e := newEnv(t, testCanaryConfig(stable, canary))
	if _, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		// Callers never see the failures: retried on stable.
		if arms := e.traffic(100); arms["v1"] != 100 {
			t.Fatalf("callers were answered by %v", arms)
		}
		e.tick()
	}
	abortedFor(t, e, "error_rate")
}

// Same confidence, different answers: the class distribution gives it away.
func TestConfidentButDifferentCanaryIsAborted(t *testing.T) {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "dent", 0.9)
	e := newEnv(t, testCanaryConfig(stable, canary))
	if _, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2"}); err != nil {
		t.Fatal(err)
	}
	e.traffic(200)
	e.tick()
	if st := e.c.State(); st.Rollout.Status != StatusRunning || st.Rollout.Failures["class_js_distance"] != 1 {
		t.Fatalf("after one failed analysis: %+v", st.Rollout)
	}
	e.traffic(50)
	e.tick()
	abortedFor(t, e, "class_js_distance")
}

// Too little traffic is inconclusive: nothing advances, nothing aborts.
func TestFewSamplesAreInconclusive(t *testing.T) {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "dent", 0.5)
	e := newEnv(t, testCanaryConfig(stable, canary))
	if _, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2"}); err != nil {
		t.Fatal(err)
	}
	e.traffic(20)
	for range 3 {
		e.tick()
	}
	st := e.c.State()
	if st.Rollout.Status != StatusRunning || st.Rollout.Step != 0 || st.Rollout.LastAnalysis.Verdict != Inconclusive {
		t.Fatalf("rollout %+v analysis %+v", st.Rollout, st.Rollout.LastAnalysis)
	}
}

func TestLowerLabelledAccuracyIsAborted(t *testing.T) {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "good", 0.9)
	cfg := testCanaryConfig(stable, canary)
	cfg.Rollout.FailureLimit = 1
	e := newEnv(t, cfg)
	ro, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	// Labelled traffic of this rollout: stable right 95%, canary 70%.
	insertLabelled(t, e, ro.ID, "stable", 100, 95)
	insertLabelled(t, e, ro.ID, "canary", 100, 70)
	e.traffic(200)
	e.tick()
	abortedFor(t, e, "labelled_accuracy")
	m := e.c.State().Rollout.LastAnalysis.Metrics
	i := slices.IndexFunc(m, func(m Metric) bool { return m.Name == "labelled_accuracy" })
	if m[i].Stable != 0.95 || m[i].Canary != 0.70 {
		t.Errorf("accuracy metric %+v", m[i])
	}
}

// insertLabelled writes n predictions of arm with their labels, correct of
// them right, as ingest would have stored them.
func insertLabelled(t *testing.T, e *env, rolloutID, arm string, n, correct int) {
	ctx := context.Background()
	now := time.Now().UTC()
	pb, err := e.conn.PrepareBatch(ctx, "INSERT INTO "+e.db+".predictions (event_id, ts, ts_ms, model, model_version, source, task, predicted_class, arm, rollout_id, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := e.conn.PrepareBatch(ctx, "INSERT INTO "+e.db+".labels (event_id, label, annotator, ts, ts_ms, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("%s-%s-%d", rolloutID, arm, i)
		label := "good"
		if i >= correct {
			label = "dent"
		}
		if err := pb.Append(id, now, uint64(now.UnixMilli()), e.cfg.Model, "v", "cam-1", "classification", "good", arm, rolloutID, now); err != nil {
			t.Fatal(err)
		}
		if err := lb.Append(id, label, "ann", now, uint64(now.UnixMilli()), now); err != nil {
			t.Fatal(err)
		}
	}
	if err := pb.Send(); err != nil {
		t.Fatal(err)
	}
	if err := lb.Send(); err != nil {
		t.Fatal(err)
	}
}

// promoted returns an env whose v2 was promoted over v1.
func promoted(t *testing.T) *env {
	stable, canary := newModel(t, "good", 0.9), newModel(t, "good", 0.9)
	e := newEnv(t, testCanaryConfig(stable, canary))
	ro, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Act(context.Background(), "olga", "promote", ro.ID, "looks fine"); err != nil {
		t.Fatal(err)
	}
	if arms := e.traffic(20); arms["v2"] != 20 {
		t.Fatalf("after promotion traffic went to %v", arms)
	}
	return e
}

var (
	olga  = auth.Principal{Name: "olga", Roles: []auth.Role{auth.RoleOperator, auth.RoleApprover}}
	alice = auth.Principal{Name: "alice", Roles: []auth.Role{auth.RoleApprover}}
	vic   = auth.Principal{Name: "vic", Roles: []auth.Role{auth.RoleViewer, auth.RoleOperator}}
)

func TestRollbackNeedsAnotherApprover(t *testing.T) {
	e := promoted(t)
	ctx := context.Background()
	rb, err := e.c.RequestRollback(ctx, "olga", "accuracy complaints")
	if err != nil {
		t.Fatal(err)
	}
	if arms := e.traffic(20); arms["v2"] != 20 {
		t.Fatalf("a pending rollback changed traffic: %v", arms)
	}
	if err := e.c.Decide(ctx, olga, rb.ID, true, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("self-approval: %v, want forbidden", err)
	}
	if err := e.c.Decide(ctx, vic, rb.ID, true, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("approval without the approver role: %v, want forbidden", err)
	}
	if arms := e.traffic(20); arms["v2"] != 20 {
		t.Fatalf("refused approvals changed traffic: %v", arms)
	}
	if err := e.c.Decide(ctx, alice, rb.ID, true, "agreed"); err != nil {
		t.Fatal(err)
	}
	if arms := e.traffic(20); arms["v1"] != 20 {
		t.Fatalf("approved rollback did not switch traffic: %v", arms)
	}
	st := e.c.State()
	if st.Stable != "v1" || st.Previous != "v2" || st.Rollbacks[0].Status != RollbackApproved || st.Rollbacks[0].DecidedBy != "alice" {
		t.Errorf("state after approval %+v", st)
	}
	if err := e.c.Decide(ctx, alice, rb.ID, true, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second approval: %v, want conflict", err)
	}
}

func TestRejectedAndExpiredRollbacksChangeNothing(t *testing.T) {
	e := promoted(t)
	ctx := context.Background()
	rb, err := e.c.RequestRollback(ctx, "olga", "try")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Decide(ctx, alice, rb.ID, false, "no evidence"); err != nil {
		t.Fatal(err)
	}
	if e.c.State().Stable != "v2" || e.router.Route().Stable != "v2" {
		t.Fatal("rejection changed the stable version")
	}
	rb2, err := e.c.RequestRollback(ctx, "olga", "again")
	if err != nil {
		t.Fatal(err)
	}
	e.advance(2 * time.Hour)
	e.tick()
	st := e.c.State()
	if st.Rollbacks[1].Status != RollbackExpired || st.Stable != "v2" {
		t.Fatalf("after the TTL: %+v", st.Rollbacks)
	}
	if err := e.c.Decide(ctx, alice, rb2.ID, true, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("approving an expired request: %v, want conflict", err)
	}
	if arms := e.traffic(10); arms["v2"] != 10 {
		t.Errorf("traffic %v, want all on v2", arms)
	}
	want := []string{"init", "rollout_start", "rollout_promote", "rollback_request", "rollback_reject", "rollback_request", "rollback_expire"}
	if got := e.actions(); !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func TestRestartKeepsTheServingVersion(t *testing.T) {
	e := promoted(t)
	e.restart() // configuration still says stable: v1
	if arms := e.traffic(20); arms["v2"] != 20 {
		t.Fatalf("after restart traffic went to %v, want v2 (promoted before the restart)", arms)
	}
	// A running rollout survives too, at its step.
	ro, err := e.c.Start(context.Background(), "olga", StartRequest{Canary: "v1", Steps: []float64{30, 100}})
	if err != nil {
		t.Fatal(err)
	}
	before := e.router.Route()
	e.restart()
	if after := e.router.Route(); after != before || after.RolloutID != ro.ID || after.CanaryPercent != 30 {
		t.Errorf("route before restart %+v, after %+v", before, after)
	}
}

// fakeAlarms answers every query with its lines and remembers the last query.
type fakeAlarms struct {
	lines []string
	last  *AlarmQuery
}

func (f fakeAlarms) Alarms(_ context.Context, q AlarmQuery) ([]string, error) {
	if f.last != nil {
		*f.last = q
	}
	return f.lines, nil
}

func TestAlarmProposesRollbackOnce(t *testing.T) {
	e := promoted(t)
	ctx := context.Background()
	var q AlarmQuery
	if err := e.c.CheckAlarms(ctx, fakeAlarms{last: &q}); err != nil || len(e.c.State().Rollbacks) != 0 {
		t.Fatalf("no alarms proposed a rollback: %v", err)
	}
	if q.Version != "v2" || q.PreviousVersion != "v1" || !q.Since.Equal(e.c.State().PromotedAt) || q.MaxAccuracyDrop <= 0 {
		t.Errorf("alarm query %+v", q)
	}
	for range 2 {
		if err := e.c.CheckAlarms(ctx, fakeAlarms{lines: []string{"drift embeddings on cam-2"}}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.c.State()
	if len(st.Rollbacks) != 1 || st.Rollbacks[0].RequestedBy != "lookout-auto" || st.Rollbacks[0].Status != RollbackPending || st.Stable != "v2" {
		t.Fatalf("proposal: %+v", st.Rollbacks)
	}
	// Any approver may approve an automatic proposal.
	if err := e.c.Decide(ctx, olga, st.Rollbacks[0].ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if e.router.Route().Stable != "v1" {
		t.Error("approved proposal did not switch traffic")
	}
}

// A follower router serves the controller's recorded route and refuses changes.
func TestFollowerServesTheControllersRoute(t *testing.T) {
	e := promoted(t) // the controller instance; v2 is stable
	cfg := e.cfg
	cfg.Follow = true
	r, err := router.New(router.Options{Config: cfg, Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := New(ctx, Options{Config: cfg, Router: r, Audit: e.audit, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Route().Stable != "v2" {
		t.Fatalf("follower started on %+v, want the recorded stable v2", r.Route())
	}
	ro, err := e.c.Start(ctx, "olga", StartRequest{Canary: "v1", Steps: []float64{20, 100}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if rt := r.Route(); rt.Canary != "v1" || rt.CanaryPercent != 20 || rt.RolloutID != ro.ID {
		t.Errorf("follower route %+v after the controller started %s", rt, ro.ID)
	}
	if _, err := f.Start(ctx, "olga", StartRequest{Canary: "v1"}); !errors.Is(err, ErrConflict) {
		t.Errorf("a follower accepted a change: %v", err)
	}
	if n := len(e.actions()); n != 4 {
		t.Errorf("audit has %d entries, want 4 (the follower must not write)", n)
	}
}
