package drift

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/lookout-dev/lookout/drift/stats"
	"github.com/lookout-dev/lookout/internal/config"
)

// Test names as stored in drift_reports and metric labels.
const (
	// TestClassChi2 is the chi-square test on predicted-class counts: the
	// hard form of black-box shift detection (BBSD). Effect: JS distance.
	TestClassChi2 = "class_chi2"
	// TestScoresKS is KS on confidence, entropy and margin with
	// Benjamini–Hochberg across the three. Effect: KS D.
	TestScoresKS = "scores_ks"
	// TestProbsKS is KS on every class-probability dimension of the softmax
	// vectors with Benjamini–Hochberg: the soft form of BBSD. Effect: KS D.
	TestProbsKS = "probs_ks"
	// TestEmbeddingMMD is the RBF-kernel MMD² permutation test on the image
	// embeddings. Effect: MMD².
	TestEmbeddingMMD = "embedding_mmd"
	// TestEmbeddingKS is KS on K random projections of the embeddings with
	// Benjamini–Hochberg. Effect: KS D.
	TestEmbeddingKS = "embedding_ks"
)

// Tests lists every test in the order a run evaluates them.
var Tests = []string{TestClassChi2, TestScoresKS, TestProbsKS, TestEmbeddingMMD, TestEmbeddingKS}

// Statuses of a report row.
const (
	StatusOK           = "ok"
	StatusDrift        = "drift"
	StatusInsufficient = "insufficient_data"
)

// Row is one prediction of a window's bounded subsample.
type Row struct {
	EventID    string
	Class      string
	Confidence float64
	Entropy    float64
	Margin     float64
	// Probs is the softmax vector by class name (top-k events carry only
	// their top classes; the others count as 0).
	Probs map[string]float64
}

// Sample is what the tests see of one window. Counts that aggregate well
// come from ClickHouse over the whole window; per-event values are a
// bounded, deterministic pseudo-random subsample.
type Sample struct {
	// Classes counts distinct events per predicted class over the window.
	Classes map[string]float64
	// Rows is the subsample the score, probability and slice tests use.
	Rows []Row
	// Embeddings and EmbeddingIDs are the subsample's image embeddings and
	// their event ids, all from one embedder.
	Embeddings   [][]float32
	EmbeddingIDs []string
	// EmbeddingNote says why Embeddings is empty when it is.
	EmbeddingNote string
	// Labeled counts events of the window with ground truth, Correct those
	// the model predicted right.
	Labeled, Correct int

	// truth holds the true class per row for synthetic samples (tests and
	// calibration); the job never sets it.
	truth []string
}

// Params are the knobs of one evaluation.
type Params struct {
	Alpha        float64
	MinSamples   int
	Permutations int
	// Effect-size floors: significance alone never flags drift.
	MinMMD2, MinJS, MinKS float64
	// Projections is K, the number of random projections of the embeddings.
	Projections int
	// MMDFeatures > 0 switches the MMD test to its random-Fourier-feature
	// variant with that many features (for large windows).
	MMDFeatures int
	// Seed drives the permutations; ProjectionSeed the projection
	// directions, which must stay fixed per embedder so that runs compare.
	Seed, ProjectionSeed uint64
}

// ParamsFromConfig maps the configuration onto Params; seeds are set per
// scope and run by the job.
func ParamsFromConfig(c config.Drift) Params {
	return Params{
		Alpha: c.Alpha, MinSamples: c.MinSamples, Permutations: c.Permutations,
		MinMMD2: c.MinMMD2, MinJS: c.MinJS, MinKS: c.MinKS,
		Projections: c.Projections, MMDFeatures: c.MMDFeatures,
	}
}

// Result is the outcome of one test.
type Result struct {
	Test      string
	Status    string
	Statistic float64
	PValue    float64
	Effect    float64
	MinEffect float64
	Alpha     float64
	NRef      int
	NCur      int
	Detail    string
	// Explain lists what moved most, strongest first.
	Explain []Explanation
}

// Flagged reports whether the test found drift.
func (r Result) Flagged() bool { return r.Status == StatusDrift }

// Explanation kinds.
const (
	ExplainClass      = "class"       // a predicted class whose share moved; value = share change
	ExplainScore      = "score"       // confidence/entropy/margin; value = KS D
	ExplainProb       = "probability" // a class-probability dimension; value = KS D
	ExplainProjection = "projection"  // a random projection; value = KS D
	ExplainDimension  = "dimension"   // an embedding coordinate; value = standardised mean shift
	ExplainSlice      = "slice"       // a predicted-class slice; value = confidence mean change
	ExplainEvent      = "event"       // a current event unlike the reference; value = distance
)

// Explanation is one item that drives (or may drive) a drift.
type Explanation struct {
	Kind   string
	Item   string
	Value  float64
	PValue float64 // NaN when the item is not a test
	Detail string
}

// maxExplain bounds the explanation rows per test.
const maxExplain = 10

// Evaluate runs every test on a reference and a current sample.
func Evaluate(ref, cur *Sample, p Params) []Result {
	out := make([]Result, 0, len(Tests))
	for _, name := range Tests {
		out = append(out, EvaluateTest(name, ref, cur, p))
	}
	return out
}

// EvaluateTest runs one named test (one of Tests).
func EvaluateTest(name string, ref, cur *Sample, p Params) Result {
	switch name {
	case TestClassChi2:
		return classTest(ref, cur, p)
	case TestScoresKS:
		return scoresTest(ref, cur, p)
	case TestProbsKS:
		return probsTest(ref, cur, p)
	case TestEmbeddingMMD:
		return mmdTest(ref, cur, p)
	case TestEmbeddingKS:
		return projectionTest(ref, cur, p)
	}
	return Result{Test: name, Status: StatusInsufficient, Detail: "unknown test"}
}

// MinEffectFor is the effect-size floor of a test.
func MinEffectFor(test string, p Params) float64 {
	switch test {
	case TestClassChi2:
		return p.MinJS
	case TestEmbeddingMMD:
		return p.MinMMD2
	}
	return p.MinKS
}

func newResult(test string, p Params, nRef, nCur int) (Result, bool) {
	r := Result{Test: test, MinEffect: MinEffectFor(test, p), Alpha: p.Alpha, NRef: nRef, NCur: nCur, PValue: 1}
	if nRef < p.MinSamples || nCur < p.MinSamples {
		r.Status = StatusInsufficient
		r.Detail = fmt.Sprintf("need at least %d samples in each window, have reference %d, current %d", p.MinSamples, nRef, nCur)
		return r, false
	}
	return r, true
}

func decide(r Result) string {
	if r.PValue < r.Alpha && r.Effect >= r.MinEffect {
		return StatusDrift
	}
	return StatusOK
}

func classTest(ref, cur *Sample, p Params) Result {
	r, ok := newResult(TestClassChi2, p, total(ref.Classes), total(cur.Classes))
	if !ok {
		return r
	}
	chi, err := stats.ChiSquare(ref.Classes, cur.Classes)
	if err != nil {
		// One class on both sides: nothing moved that a chi-square can see.
		r.Status, r.Detail = StatusOK, err.Error()
		return r
	}
	js, _ := stats.JensenShannonDistance(ref.Classes, cur.Classes)
	g, _ := stats.GTest(ref.Classes, cur.Classes)
	psi, _ := stats.PSI(ref.Classes, cur.Classes, 1e-4)
	r.Statistic, r.PValue, r.Effect = chi.Statistic, chi.PValue, js
	r.Explain = classShifts(ref.Classes, cur.Classes)
	r.Detail = fmt.Sprintf("dof=%d G=%.4g (p=%.3g) PSI=%.3f; top class shifts: %s",
		chi.DOF, g.Statistic, g.PValue, psi, describeShifts(r.Explain, 3))
	r.Status = decide(r)
	return r
}

// column is one univariate feature of a KS family.
type column struct {
	name     string
	ref, cur []float64
}

// ksFamily tests every column with KS and corrects across the family with
// Benjamini–Hochberg. A component flags when its adjusted p (q) is below
// alpha and its D reaches the floor; the family reports the smallest q as
// its p-value and, as effect, the largest D among significant components
// (or the D of the most significant one when none is), so the family flags
// exactly when some component does.
func ksFamily(r Result, kind string, cols []column) Result {
	ps := make([]float64, len(cols))
	ds := make([]float64, len(cols))
	shifts := make([]float64, len(cols))
	for i, c := range cols {
		res, err := stats.KSTwoSample(c.ref, c.cur)
		if err != nil {
			ps[i] = math.NaN()
			continue
		}
		ps[i], ds[i] = res.PValue, res.D
		shifts[i] = mean(c.cur) - mean(c.ref)
	}
	qs := stats.BenjaminiHochberg(ps)
	best := -1
	for i := range cols {
		if math.IsNaN(qs[i]) {
			continue
		}
		if best < 0 || qs[i] < qs[best] || qs[i] == qs[best] && ds[i] > ds[best] {
			best = i
		}
	}
	if best < 0 {
		r.Status, r.Detail = StatusOK, "no testable component"
		return r
	}
	r.PValue, r.Statistic, r.Effect = qs[best], ds[best], ds[best]
	for i := range cols {
		if qs[i] < r.Alpha && ds[i] > r.Effect {
			r.Effect = ds[i]
		}
	}
	for i, c := range cols {
		if !math.IsNaN(qs[i]) {
			r.Explain = append(r.Explain, Explanation{Kind: kind, Item: c.name, Value: ds[i], PValue: qs[i],
				Detail: fmt.Sprintf("mean %+.4g", shifts[i])})
		}
	}
	sort.SliceStable(r.Explain, func(a, b int) bool {
		ea, eb := r.Explain[a], r.Explain[b]
		if ea.PValue != eb.PValue {
			return ea.PValue < eb.PValue
		}
		return ea.Value > eb.Value
	})
	r.Explain = r.Explain[:min(len(r.Explain), maxExplain)]
	var parts []string
	for _, e := range r.Explain[:min(len(r.Explain), 3)] {
		parts = append(parts, fmt.Sprintf("%s D=%.3f q=%.3g (%s)", e.Item, e.Value, e.PValue, e.Detail))
	}
	r.Detail = fmt.Sprintf("%d components, Benjamini–Hochberg; top: %s", len(cols), strings.Join(parts, "; "))
	r.Status = decide(r)
	return r
}

func scoresTest(ref, cur *Sample, p Params) Result {
	r, ok := newResult(TestScoresKS, p, len(ref.Rows), len(cur.Rows))
	if !ok {
		return r
	}
	get := []struct {
		name string
		f    func(Row) float64
	}{
		{"confidence", func(x Row) float64 { return x.Confidence }},
		{"entropy", func(x Row) float64 { return x.Entropy }},
		{"margin", func(x Row) float64 { return x.Margin }},
	}
	cols := make([]column, len(get))
	for i, g := range get {
		cols[i] = column{name: g.name, ref: rowValues(ref.Rows, g.f), cur: rowValues(cur.Rows, g.f)}
	}
	r = ksFamily(r, ExplainScore, cols)
	r.Explain = append(r.Explain, classSlices(ref.Rows, cur.Rows, p)...)
	return r
}

func probsTest(ref, cur *Sample, p Params) Result {
	r, ok := newResult(TestProbsKS, p, len(ref.Rows), len(cur.Rows))
	if !ok {
		return r
	}
	seen := map[string]bool{}
	for _, rows := range [][]Row{ref.Rows, cur.Rows} {
		for _, x := range rows {
			for c := range x.Probs {
				seen[c] = true
			}
		}
	}
	if len(seen) == 0 {
		r.Status, r.Detail = StatusInsufficient, "no probability vectors in these windows (detection task or no probs)"
		return r
	}
	names := make([]string, 0, len(seen))
	for c := range seen {
		names = append(names, c)
	}
	slices.Sort(names)
	cols := make([]column, len(names))
	for i, c := range names {
		f := func(x Row) float64 { return x.Probs[c] }
		cols[i] = column{name: "p(" + c + ")", ref: rowValues(ref.Rows, f), cur: rowValues(cur.Rows, f)}
	}
	return ksFamily(r, ExplainProb, cols)
}

func mmdTest(ref, cur *Sample, p Params) Result {
	r, ok := newResult(TestEmbeddingMMD, p, len(ref.Embeddings), len(cur.Embeddings))
	if !ok {
		if note := embeddingNote(ref, cur); note != "" {
			r.Detail = note
		}
		return r
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x10c0))
	if p.MMDFeatures > 0 {
		res, err := stats.MMDRFFTest(ref.Embeddings, cur.Embeddings, p.MMDFeatures, p.Permutations, rng)
		if err != nil {
			r.Status, r.Detail = StatusInsufficient, "mmd: "+err.Error()
			return r
		}
		r.Statistic, r.PValue, r.Effect = res.MMD2, res.PValue, res.MMD2
		r.Detail = fmt.Sprintf("random Fourier features D=%d, rbf bandwidth=%.4g (median heuristic), permutations=%d",
			res.Features, res.Bandwidth, res.Permutations)
	} else {
		res, err := stats.MMDTest(ref.Embeddings, cur.Embeddings, p.Permutations, rng)
		if err != nil {
			r.Status, r.Detail = StatusInsufficient, "mmd: "+err.Error()
			return r
		}
		r.Statistic, r.PValue, r.Effect = res.MMD2, res.PValue, res.MMD2
		r.Detail = fmt.Sprintf("rbf bandwidth=%.4g (median heuristic), permutations=%d", res.Bandwidth, res.Permutations)
	}
	r.Explain = append(unusualEvents(ref, cur), dimensionShifts(ref.Embeddings, cur.Embeddings)...)
	r.Status = decide(r)
	return r
}

func projectionTest(ref, cur *Sample, p Params) Result {
	r, ok := newResult(TestEmbeddingKS, p, len(ref.Embeddings), len(cur.Embeddings))
	if !ok {
		if note := embeddingNote(ref, cur); note != "" {
			r.Detail = note
		}
		return r
	}
	dirs := Projections(p.Projections, len(ref.Embeddings[0]), p.ProjectionSeed)
	cols := make([]column, len(dirs))
	for i, d := range dirs {
		cols[i] = column{name: fmt.Sprintf("proj-%02d", i), ref: project(ref.Embeddings, d), cur: project(cur.Embeddings, d)}
	}
	return ksFamily(r, ExplainProjection, cols)
}

func embeddingNote(ref, cur *Sample) string {
	if cur.EmbeddingNote != "" {
		return cur.EmbeddingNote
	}
	return ref.EmbeddingNote
}

// Projections returns k random unit directions in dim dimensions, a fixed
// function of seed: the job seeds them from the embedder, so every run of
// one embedding space projects onto the same axes.
func Projections(k, dim int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([][]float64, k)
	for i := range out {
		v := make([]float64, dim)
		var norm float64
		for j := range v {
			v[j] = rng.NormFloat64()
			norm += v[j] * v[j]
		}
		norm = math.Sqrt(norm)
		for j := range v {
			v[j] /= norm
		}
		out[i] = v
	}
	return out
}

// SeedFor hashes strings into a seed.
func SeedFor(parts ...string) uint64 {
	h := fnv.New64a()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func project(x [][]float32, d []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		var s float64
		for j, c := range v {
			s += float64(c) * d[j]
		}
		out[i] = s
	}
	return out
}

func rowValues(rows []Row, f func(Row) float64) []float64 {
	out := make([]float64, len(rows))
	for i, x := range rows {
		out[i] = f(x)
	}
	return out
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func total(m map[string]float64) int {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return int(t)
}
