// Package drift runs lookout's periodic drift job: for every model × model
// version × source it compares the current window with a reference window
// with several two-sample tests — predicted-class counts (chi-square, the
// hard form of black-box shift detection), the softmax vectors (KS per class
// probability, the soft form), confidence/entropy/margin (KS), and the image
// embeddings (MMD² permutation test and KS on random projections) — writes
// one report row per test, explanations of what moved and the estimated and
// realised accuracy to ClickHouse, and exports the outcome as gauges.
//
// A test flags drift only when it is significant at Alpha AND its effect
// size reaches the configured floor, so large windows do not alarm on
// trivial differences; windows with fewer than MinSamples say so instead.
// Families of univariate tests are corrected with Benjamini–Hochberg.
//
// Evaluate and its inputs are pure Go, so `lookout drift calibrate` measures
// the false-alarm rate and power of exactly the code the job runs.
package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
)

// Scope is what one drift comparison is about. Different model versions
// are different scopes: a new version is compared with its own reference.
type Scope struct {
	Model   string
	Version string
	Source  string
}

func (s Scope) String() string { return s.Model + "/" + s.Version + "/" + s.Source }

// Window is a half-open time range [From, To).
type Window struct {
	From, To time.Time
}

// Report is the outcome of one test on one scope.
type Report struct {
	Scope
	Result
	RunAt    time.Time
	Embedder string
	Ref, Cur Window
	// Reference describes where the reference came from ("first 1m0s",
	// "rolling", "pinned", "pinned from m/v/s").
	Reference string
}

// ScopeRun is everything one run found for one scope.
type ScopeRun struct {
	Scope     Scope
	Reports   []Report
	Accuracy  Accuracy
	Reference string
}

// Job is the periodic drift job.
type Job struct {
	conn    driver.Conn
	cfg     config.Drift
	metrics *Metrics
	log     *slog.Logger
	workers int         // scopes evaluated at once
	seq     *sequential // nil unless drift.sequential_arl > 0
	known   scopeCache  // scopes seen so far, with their first prediction
}

// NewJob returns a job reading and writing through conn.
func NewJob(conn driver.Conn, cfg config.Drift, m *Metrics, log *slog.Logger) *Job {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Job{conn: conn, cfg: cfg, metrics: m, log: log, workers: scopeWorkers, seq: newSequential(cfg.SequentialARL)}
}

// Run evaluates every Interval until ctx is cancelled, passing each run's
// reports to onReport (which may be nil). A failed run is logged and counted;
// the next tick tries again.
func (j *Job) Run(ctx context.Context, onReport func([]Report)) error {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			reports, err := j.RunOnce(ctx, now)
			if err != nil {
				if ctx.Err() == nil {
					j.metrics.runs.WithLabelValues("error").Inc()
					j.log.Error("drift run failed", "err", err)
				}
				continue
			}
			if onReport != nil {
				onReport(reports)
			}
		}
	}
}

// RunOnce evaluates every scope as of now, stores and exports the results,
// and returns the reports of every scope.
func (j *Job) RunOnce(ctx context.Context, now time.Time) ([]Report, error) {
	runs, err := j.RunScopes(ctx, now)
	if err != nil {
		return nil, err
	}
	var reports []Report
	for _, r := range runs {
		reports = append(reports, r.Reports...)
	}
	return reports, nil
}

// RunScopes is RunOnce with the per-scope accuracy as well.
func (j *Job) RunScopes(ctx context.Context, now time.Time) ([]ScopeRun, error) {
	scopes, err := j.scopes(ctx, now)
	if err != nil {
		return nil, err
	}
	pins, err := ListReferences(ctx, j.conn)
	if err != nil {
		return nil, err
	}
	labels, err := anyLabels(ctx, j.conn)
	if err != nil {
		return nil, err
	}
	runAt := now.Truncate(time.Second)
	runs, err := j.evaluateAll(ctx, scopes, pins, runAt, labels)
	if err != nil {
		return nil, err
	}
	if j.seq != nil {
		for i := range runs {
			if len(runs[i].Reports) > 0 {
				runs[i].Reports = append(runs[i].Reports, j.seq.update(runs[i].Reports[0], runs[i].Reports))
			}
		}
	}
	if err := j.store(ctx, runAt, runs); err != nil {
		return nil, err
	}
	for _, run := range runs {
		for _, r := range run.Reports {
			j.metrics.export(r)
			j.logReport(r)
		}
		j.metrics.exportAccuracy(run.Scope, run.Accuracy)
	}
	j.metrics.runs.WithLabelValues("ok").Inc()
	j.metrics.lastRun.Set(float64(now.Unix()))
	return runs, nil
}

// scopeWorkers bounds how many scopes are evaluated at once. Each
// ClickHouse query already uses both cores of the benchmark machine; two
// scopes in flight overlap one scope's Go-side statistics with the other's
// queries. Measured (BENCHMARKS.md, Drift): 2 beat 1 and 4.
const scopeWorkers = 2

// evaluateAll evaluates every scope, in parallel, keeping the scope order.
// Every scope's random seeds derive from the scope and run time, so the
// outcome does not depend on scheduling.
func (j *Job) evaluateAll(ctx context.Context, scopes []scopeStart, pins []Reference, runAt time.Time, labels bool) ([]ScopeRun, error) {
	runs := make([]ScopeRun, len(scopes))
	errs := make([]error, len(scopes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(j.workers, 1), len(scopes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sc := scopes[i]
				runs[i], errs[i] = j.evaluate(ctx, sc, pinFor(pins, sc.Scope), runAt, labels)
				if errs[i] != nil {
					errs[i] = fmt.Errorf("drift %s: %w", sc.Scope, errs[i])
				}
			}
		}()
	}
	for i := range scopes {
		next <- i
	}
	close(next)
	wg.Wait()
	return runs, errors.Join(errs...)
}

func (j *Job) store(ctx context.Context, runAt time.Time, runs []ScopeRun) error {
	var reports []Report
	for _, r := range runs {
		reports = append(reports, r.Reports...)
	}
	if err := insertReports(ctx, j.conn, reports); err != nil {
		return err
	}
	if err := insertExplanations(ctx, j.conn, reports); err != nil {
		return err
	}
	return insertAccuracy(ctx, j.conn, runAt, runs)
}

func (j *Job) logReport(r Report) {
	if !r.Flagged() {
		j.log.Debug("drift test", "scope", r.Scope.String(), "test", r.Test, "status", r.Status,
			"p_value", r.PValue, "effect", r.Effect)
		return
	}
	j.log.Warn("DRIFT FLAGGED", "model", r.Model, "version", r.Version, "source", r.Source, "test", r.Test,
		"statistic", r.Statistic, "p_value", r.PValue, "effect", r.Effect, "min_effect", r.MinEffect,
		"n_ref", r.NRef, "n_cur", r.NCur, "reference", r.Reference, "detail", r.Detail)
}

// referenceFor derives the reference window of a scope and the scope whose
// data fills it: a pinned reference if there is one, else the configured
// mode ("first": the first ReferenceDuration of the scope's data; "rolling":
// the ReferenceDuration just before the current window). Times are whole
// seconds, since ts is stored at second precision.
func (j *Job) referenceFor(sc scopeStart, pin *Reference, cur Window) (Window, Scope, string) {
	if pin != nil {
		desc := "pinned"
		if pin.From != pin.Scope {
			desc = "pinned from " + pin.From.String()
		}
		return Window{From: pin.Window.From.Truncate(time.Second), To: pin.Window.To.Truncate(time.Second)}, pin.From, desc
	}
	if j.cfg.ReferenceMode == "rolling" {
		return Window{From: cur.From.Add(-j.cfg.ReferenceDuration), To: cur.From}, sc.Scope, "rolling " + j.cfg.ReferenceDuration.String()
	}
	first := sc.first.Truncate(time.Second)
	return Window{From: first, To: first.Add(j.cfg.ReferenceDuration)}, sc.Scope, "first " + j.cfg.ReferenceDuration.String()
}

// evaluate runs every test on one scope; labels says whether any label
// exists at all (without, the label join is skipped).
func (j *Job) evaluate(ctx context.Context, sc scopeStart, pin *Reference, runAt time.Time, labels bool) (ScopeRun, error) {
	cur := Window{From: runAt.Add(-j.cfg.Window), To: runAt}
	ref, refScope, desc := j.referenceFor(sc, pin, cur)
	run := ScopeRun{Scope: sc.Scope, Reference: desc}
	base := Report{Scope: sc.Scope, RunAt: runAt, Ref: ref, Cur: cur, Reference: desc}
	p := ParamsFromConfig(j.cfg)
	if refScope == sc.Scope && cur.From.Before(ref.To) {
		for _, t := range Tests {
			r := base
			r.Result = Result{Test: t, Status: StatusInsufficient, Alpha: p.Alpha, MinEffect: MinEffectFor(t, p), PValue: 1,
				Detail: "reference window still filling: the current window must start after it ends"}
			run.Reports = append(run.Reports, r)
		}
		run.Accuracy = EstimateAccuracy(&Sample{}, &Sample{})
		return run, nil
	}
	start := time.Now()
	embedder, err := store.LatestEmbedder(ctx, j.conn, "model = ? AND model_version = ? AND source = ?", sc.Model, sc.Version, sc.Source)
	if err != nil {
		return run, err
	}
	refSample, curSample, err := j.readSamples(ctx, side{refScope, ref}, side{sc.Scope, cur}, embedder, labels)
	if err != nil {
		return run, fmt.Errorf("read windows: %w", err)
	}
	read := time.Since(start)
	p.ProjectionSeed = SeedFor("projections", embedder)
	for _, t := range Tests {
		p.Seed = SeedFor(sc.Model, sc.Version, sc.Source, t, fmt.Sprint(runAt.Unix()))
		r := base
		r.Embedder = embedder
		r.Result = EvaluateTest(t, refSample, curSample, p)
		run.Reports = append(run.Reports, r)
	}
	run.Accuracy = EstimateAccuracy(refSample, curSample)
	j.log.Debug("drift scope evaluated", "scope", sc.Scope.String(), "read", read, "tests", time.Since(start)-read)
	return run, nil
}
