// Package drift runs lookout's periodic drift job: for every model × source
// it compares the current window with a reference window on the image
// embeddings (MMD² with a permutation test) and on the predicted-class mix
// (chi-square test, Jensen–Shannon distance as effect size), writes one report
// row per test to ClickHouse and exports the outcome as Prometheus gauges.
//
// A test flags drift only when it is significant at Alpha AND its effect size
// reaches the configured floor, so large windows do not alarm on trivial
// differences, and windows with fewer than MinSamples say so instead.
package drift

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/drift/stats"
	"github.com/lookout-dev/lookout/internal/config"
)

// Test names as stored in drift_reports and metric labels.
const (
	TestEmbeddingMMD = "embedding_mmd"
	TestClassChi2    = "class_chi2"
)

// Statuses of a report row.
const (
	StatusOK           = "ok"
	StatusDrift        = "drift"
	StatusInsufficient = "insufficient_data"
)

// Scope is what one drift comparison is about.
type Scope struct {
	Model  string
	Source string
}

// Window is a half-open time range [From, To).
type Window struct {
	From, To time.Time
}

// Report is the outcome of one test on one scope.
type Report struct {
	Scope
	RunAt     time.Time
	Embedder  string
	Test      string
	Status    string
	Statistic float64
	PValue    float64
	Effect    float64
	MinEffect float64
	Alpha     float64
	NRef      int
	NCur      int
	Ref, Cur  Window
	Detail    string
}

// Flagged reports whether the test found drift.
func (r Report) Flagged() bool { return r.Status == StatusDrift }

// Job is the periodic drift job.
type Job struct {
	conn    driver.Conn
	cfg     config.Drift
	metrics *Metrics
	log     *slog.Logger
}

// NewJob returns a job reading and writing through conn.
func NewJob(conn driver.Conn, cfg config.Drift, m *Metrics, log *slog.Logger) *Job {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Job{conn: conn, cfg: cfg, metrics: m, log: log}
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

// RunOnce evaluates every scope as of now, stores and exports the reports.
func (j *Job) RunOnce(ctx context.Context, now time.Time) ([]Report, error) {
	scopes, err := j.scopes(ctx)
	if err != nil {
		return nil, err
	}
	var reports []Report
	for _, sc := range scopes {
		rs, err := j.evaluate(ctx, sc.Scope, sc.first, now)
		if err != nil {
			return nil, fmt.Errorf("drift %s/%s: %w", sc.Model, sc.Source, err)
		}
		reports = append(reports, rs...)
	}
	if err := insertReports(ctx, j.conn, reports); err != nil {
		return nil, err
	}
	for _, r := range reports {
		j.metrics.export(r)
		j.logReport(r)
	}
	j.metrics.runs.WithLabelValues("ok").Inc()
	j.metrics.lastRun.Set(float64(now.Unix()))
	return reports, nil
}

func (j *Job) logReport(r Report) {
	if !r.Flagged() {
		j.log.Debug("drift test", "model", r.Model, "source", r.Source, "test", r.Test, "status", r.Status,
			"p_value", r.PValue, "effect", r.Effect)
		return
	}
	j.log.Warn("DRIFT FLAGGED", "model", r.Model, "source", r.Source, "test", r.Test,
		"statistic", r.Statistic, "p_value", r.PValue, "effect", r.Effect, "min_effect", r.MinEffect,
		"n_ref", r.NRef, "n_cur", r.NCur, "detail", r.Detail)
}

// windows derives the reference and current windows of a scope. The
// reference is the first ReferenceDuration of the scope's data, whole
// seconds, since ts is stored at second precision.
func (j *Job) windows(first, now time.Time) (ref, cur Window) {
	first = first.Truncate(time.Second)
	ref = Window{From: first, To: first.Add(j.cfg.ReferenceDuration)}
	end := now.Truncate(time.Second)
	cur = Window{From: end.Add(-j.cfg.Window), To: end}
	return ref, cur
}

func (j *Job) evaluate(ctx context.Context, sc Scope, first, now time.Time) ([]Report, error) {
	ref, cur := j.windows(first, now)
	base := Report{Scope: sc, RunAt: now.Truncate(time.Second), Alpha: j.cfg.Alpha, Ref: ref, Cur: cur}
	if cur.From.Before(ref.To) {
		base.Status = StatusInsufficient
		base.Detail = "reference window still filling: the current window must start after it ends"
		a, b := base, base
		a.Test, a.MinEffect = TestClassChi2, j.cfg.MinJS
		b.Test, b.MinEffect = TestEmbeddingMMD, j.cfg.MinMMD2
		return []Report{a, b}, nil
	}
	classes, err := j.classTest(ctx, base)
	if err != nil {
		return nil, err
	}
	emb, err := j.embeddingTest(ctx, base)
	if err != nil {
		return nil, err
	}
	return []Report{classes, emb}, nil
}

func (j *Job) classTest(ctx context.Context, r Report) (Report, error) {
	r.Test, r.MinEffect = TestClassChi2, j.cfg.MinJS
	refCounts, err := classCounts(ctx, j.conn, r.Scope, r.Ref)
	if err != nil {
		return r, err
	}
	curCounts, err := classCounts(ctx, j.conn, r.Scope, r.Cur)
	if err != nil {
		return r, err
	}
	r.NRef, r.NCur = total(refCounts), total(curCounts)
	if r.NRef < j.cfg.MinSamples || r.NCur < j.cfg.MinSamples {
		return insufficient(r, j.cfg.MinSamples), nil
	}
	chi, err := stats.ChiSquare(refCounts, curCounts)
	if err != nil {
		// One class on both sides: nothing moved that a chi-square can see.
		r.Status, r.PValue, r.Detail = StatusOK, 1, err.Error()
		return r, nil
	}
	js, err := stats.JensenShannonDistance(refCounts, curCounts)
	if err != nil {
		return r, fmt.Errorf("jensen-shannon: %w", err)
	}
	r.Statistic, r.PValue, r.Effect = chi.Statistic, chi.PValue, js
	r.Detail = fmt.Sprintf("dof=%d; top class shifts: %s", chi.DOF, topShifts(refCounts, curCounts, 3))
	r.Status = decide(r)
	return r, nil
}

func (j *Job) embeddingTest(ctx context.Context, r Report) (Report, error) {
	r.Test, r.MinEffect = TestEmbeddingMMD, j.cfg.MinMMD2
	embedder, err := latestEmbedder(ctx, j.conn, r.Scope)
	if err != nil {
		return r, err
	}
	if embedder == "" {
		r.Status, r.Detail = StatusInsufficient, "no embeddings for this scope"
		return r, nil
	}
	r.Embedder = embedder
	x, err := embeddings(ctx, j.conn, r.Scope, embedder, r.Ref, j.cfg.MaxSamples)
	if err != nil {
		return r, err
	}
	y, err := embeddings(ctx, j.conn, r.Scope, embedder, r.Cur, j.cfg.MaxSamples)
	if err != nil {
		return r, err
	}
	r.NRef, r.NCur = len(x), len(y)
	if r.NRef < j.cfg.MinSamples || r.NCur < j.cfg.MinSamples {
		return insufficient(r, j.cfg.MinSamples), nil
	}
	res, err := stats.MMDTest(x, y, j.cfg.Permutations, j.rng(r))
	if err != nil {
		return r, fmt.Errorf("mmd: %w", err)
	}
	r.Statistic, r.PValue, r.Effect = res.MMD2, res.PValue, res.MMD2
	r.Detail = fmt.Sprintf("rbf bandwidth=%.4g (median heuristic), permutations=%d", res.Bandwidth, res.Permutations)
	r.Status = decide(r)
	return r, nil
}

// rng seeds the permutation test from the scope and run time, so a run can
// be reproduced exactly from its report.
func (j *Job) rng(r Report) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", r.Model, r.Source, r.Test, r.RunAt.Unix())
	return rand.New(rand.NewPCG(h.Sum64(), 0x10c0))
}

func decide(r Report) string {
	if r.PValue < r.Alpha && r.Effect >= r.MinEffect {
		return StatusDrift
	}
	return StatusOK
}

func insufficient(r Report, minSamples int) Report {
	r.Status = StatusInsufficient
	r.Detail = fmt.Sprintf("need at least %d samples in each window, have reference %d, current %d", minSamples, r.NRef, r.NCur)
	return r
}

func total(m map[string]float64) int {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return int(t)
}
