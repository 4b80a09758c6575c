package drift

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lookout-dev/lookout/drift/stats"
	"github.com/lookout-dev/lookout/internal/config"
)

func testParams() Params {
	p := ParamsFromConfig(config.Default().Drift)
	p.Permutations = 199
	p.Seed, p.ProjectionSeed = 1, 2
	return p
}

func TestEveryTestSaysInsufficientOnTinyWindows(t *testing.T) {
	syn := NewSynthetic(1)
	rng := rand.New(rand.NewPCG(1, 2))
	p := testParams()
	ref, cur := syn.Draw(rng, 500, 0), syn.Draw(rng, p.MinSamples-1, 0.5)
	for _, r := range Evaluate(ref, cur, p) {
		if r.Status != StatusInsufficient || r.Flagged() {
			t.Errorf("%s on %d vs %d events: status %s, want %s", r.Test, r.NRef, r.NCur, r.Status, StatusInsufficient)
		}
	}
}

func TestShiftIsFlaggedAndExplained(t *testing.T) {
	syn := NewSynthetic(3)
	rng := rand.New(rand.NewPCG(3, 4))
	ref, cur := syn.Draw(rng, 300, 0), syn.Draw(rng, 300, 0.6)
	results := Evaluate(ref, cur, testParams())
	if len(results) != len(Tests) {
		t.Fatalf("%d results, want %d", len(results), len(Tests))
	}
	byTest := map[string]Result{}
	for _, r := range results {
		t.Logf("%-14s %-6s p=%.3g effect=%.4f %s", r.Test, r.Status, r.PValue, r.Effect, r.Detail)
		byTest[r.Test] = r
	}
	for _, name := range []string{TestClassChi2, TestScoresKS, TestProbsKS, TestEmbeddingKS} {
		if !byTest[name].Flagged() {
			t.Errorf("%s did not flag a 60%% shift", name)
		}
	}
	// The synthetic shift sends mistakes to class-10 and class-11 and
	// takes share from the majority class-00: those must lead the list.
	top := map[string]bool{}
	for _, e := range byTest[TestClassChi2].Explain[:3] {
		top[e.Item] = true
	}
	for _, c := range []string{"class-00", "class-10", "class-11"} {
		if !top[c] {
			t.Errorf("top class shifts %v lack %s", byTest[TestClassChi2].Explain[:3], c)
		}
	}
	if e := byTest[TestScoresKS].Explain[0]; e.Kind != ExplainScore || e.PValue >= 0.01 {
		t.Errorf("first score explanation %+v", e)
	}
	var events, slicesSeen int
	for _, e := range byTest[TestEmbeddingMMD].Explain {
		if e.Kind == ExplainEvent {
			events++
			if !slices.Contains(cur.EmbeddingIDs, e.Item) {
				t.Errorf("event explanation %q is not a current-window event", e.Item)
			}
		}
	}
	for _, e := range byTest[TestScoresKS].Explain {
		if e.Kind == ExplainSlice {
			slicesSeen++
		}
	}
	if events == 0 || slicesSeen == 0 {
		t.Errorf("explanations: %d events, %d slices", events, slicesSeen)
	}
}

// A huge window makes every p-value tiny even for a negligible shift; the
// effect floors are what keep the alarm off.
func TestHugeWindowNegligibleShiftDoesNotAlarm(t *testing.T) {
	syn := NewSynthetic(5)
	rng := rand.New(rand.NewPCG(5, 6))
	p := testParams()
	p.MMDFeatures, p.Permutations = 64, 49
	ref, cur := syn.Draw(rng, 20000, 0), syn.Draw(rng, 20000, 0.03)
	// Class counts come from ClickHouse over the whole window: a million
	// events per side with the same 3% mixture.
	for c := range ref.Classes {
		ref.Classes[c] *= 50
		cur.Classes[c] *= 50
	}
	significant := 0
	for _, r := range Evaluate(ref, cur, p) {
		t.Logf("%-14s %-6s p=%.3g effect=%.4f (floor %.3g) n=%d/%d", r.Test, r.Status, r.PValue, r.Effect, r.MinEffect, r.NRef, r.NCur)
		if r.Flagged() {
			t.Errorf("%s alarmed on a negligible shift: p=%.3g effect=%.4f", r.Test, r.PValue, r.Effect)
		}
		if r.PValue < p.Alpha {
			significant++
		}
	}
	if significant == 0 {
		t.Error("no test was even significant; the case does not exercise the effect floors")
	}
}

func TestCalibrationSmoke(t *testing.T) {
	p := testParams()
	o := CalibrationOptions{Params: p, NullRuns: 40, PowerRuns: 10, DelayRuns: 2, N: 150,
		Shifts: []float64{0.5}, DelayStep: 50, DelayMax: 150, Seed: 9}
	cal, err := Calibrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cal.Tests {
		t.Logf("%-14s null p<α %d/%d %+v power %v delay %v", tc.Test, tc.Significant, tc.NullRuns, tc.SignificantCI, tc.Power, tc.MedianDelay)
		if tc.SignificantCI.Lo > p.Alpha {
			t.Errorf("%s: null rejection rate %d/%d is above α=%v beyond its 95%% interval", tc.Test, tc.Significant, tc.NullRuns, p.Alpha)
		}
		if tc.Alarms > tc.Significant {
			t.Errorf("%s: more alarms (%d) than significant runs (%d)", tc.Test, tc.Alarms, tc.Significant)
		}
	}
	if pw := cal.Tests[slices.Index(Tests, TestScoresKS)].Power[0]; pw < 0.8 {
		t.Errorf("scores_ks power at δ=0.5 is %v", pw)
	}
}

func TestProjectionsAreFixedUnitVectors(t *testing.T) {
	a, b := Projections(4, 32, 7), Projections(4, 32, 7)
	c := Projections(4, 32, 8)
	for i := range a {
		var n float64
		for _, v := range a[i] {
			n += v * v
		}
		if math.Abs(n-1) > 1e-12 {
			t.Errorf("projection %d has norm² %v", i, n)
		}
		if !slices.Equal(a[i], b[i]) || slices.Equal(a[i], c[i]) {
			t.Errorf("projection %d not a function of the seed", i)
		}
	}
}

func TestKSFamilyFlagsOnlyWithSignificanceAndEffect(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	base := func(n int, shift float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() + shift
		}
		return v
	}
	r := Result{Alpha: 0.01, MinEffect: 0.1}
	same := ksFamily(r, ExplainScore, []column{{"a", base(400, 0), base(400, 0)}, {"b", base(400, 0), base(400, 0)}})
	if same.Flagged() {
		t.Errorf("null family flagged: %+v", same)
	}
	moved := ksFamily(r, ExplainScore, []column{{"a", base(400, 0), base(400, 0)}, {"b", base(400, 0), base(400, 1)}})
	if !moved.Flagged() || moved.Explain[0].Item != "b" {
		t.Errorf("shifted component b: status %s, explain %+v", moved.Status, moved.Explain)
	}
	// The reported p is the BH-adjusted one: for two components the
	// smallest raw p doubled (when the other is larger than that).
	a, b := base(400, 0), base(400, 0.5)
	raw, _ := stats.KSTwoSample(a, b)
	fam := ksFamily(r, ExplainScore, []column{{"a", a, b}, {"same", base(400, 0), base(400, 0)}})
	if math.Abs(fam.PValue-2*raw.PValue) > 1e-12*raw.PValue {
		t.Errorf("family p %v, want 2 × raw %v", fam.PValue, raw.PValue)
	}
	r.MinEffect = 0.9
	floored := ksFamily(r, ExplainScore, []column{{"b", base(400, 0), base(400, 0.4)}})
	if floored.PValue >= 0.01 || floored.Flagged() {
		t.Errorf("significant but small effect: p=%v D=%v status %s", floored.PValue, floored.Effect, floored.Status)
	}
}

func TestEstimateAccuracy(t *testing.T) {
	ref := &Sample{Labeled: 100, Correct: 90}
	cur := &Sample{Labeled: 50, Correct: 30}
	for i := range 100 {
		ref.Rows = append(ref.Rows, Row{Confidence: float64(i) / 100})
	}
	for i := range 100 {
		cur.Rows = append(cur.Rows, Row{Confidence: float64(i) / 200})
	}
	a := EstimateAccuracy(ref, cur)
	// 90% of the reference (0.10 … 0.99) lies above the threshold 0.09;
	// of the current confidences i/200, those with i ≥ 19 do: 81 of 100.
	if math.Abs(a.Threshold-0.09) > 1e-12 || math.Abs(a.ATC-0.81) > 1e-12 {
		t.Errorf("ATC threshold %v estimate %v, want 0.09 and 0.81", a.Threshold, a.ATC)
	}
	if math.Abs(a.AvgConfidence-0.2475) > 1e-12 || a.Realised != 0.6 || a.RefRealised != 0.9 {
		t.Errorf("accuracy %+v", a)
	}
	none := EstimateAccuracy(&Sample{}, &Sample{})
	if !math.IsNaN(none.ATC) || !math.IsNaN(none.Realised) {
		t.Errorf("empty windows: %+v", none)
	}
}
