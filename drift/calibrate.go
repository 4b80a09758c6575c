package drift

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/lookout-dev/lookout/drift/stats"
)

// Synthetic is a small, pure-Go model of a camera stream for calibration:
// a 12-class classifier whose softmax, scores and (32-d) embeddings change
// in the way the simulator's shifted camera does. A shift of size δ means a
// fraction δ of the traffic comes from the new domain (a new supplier, a
// dirty lens on some shots): lower confidence, mistakes biased towards two
// look-alike classes, and embeddings moved along one direction.
type Synthetic struct {
	classes   []string
	mix       []float64
	centroids [][]float64
	direction []float64
	dim       int
}

// Synthetic stream constants: 95% accuracy and confidence U(0.80, 0.99) in
// the normal domain, 50% and U(0.35, 0.70) in the new one, as
// internal/simulate does; embeddings are class centroids (N(0, I)) plus
// N(0, I) noise, moved by synthShiftNorm along a fixed unit direction in
// the new domain, then L2-normalised as the service stores them.
const (
	synthDim       = 32
	synthShiftNorm = 4.0
)

// NewSynthetic returns the stream model; seed fixes the class mix,
// centroids and shift direction.
func NewSynthetic(seed uint64) *Synthetic {
	rng := rand.New(rand.NewPCG(seed, 0xca1))
	s := &Synthetic{dim: synthDim}
	for i := range 12 {
		s.classes = append(s.classes, fmt.Sprintf("class-%02d", i))
	}
	s.mix = make([]float64, 12)
	s.mix[0] = 6 // "good" parts dominate, as on a real line
	for i := 1; i < 12; i++ {
		s.mix[i] = 0.5 + rng.Float64()
	}
	normalise(s.mix)
	s.centroids = make([][]float64, 12)
	for i := range s.centroids {
		s.centroids[i] = gaussianVector(rng, synthDim, 1)
	}
	s.direction = Projections(1, synthDim, seed^0xd1)[0]
	return s
}

func gaussianVector(rng *rand.Rand, d int, scale float64) []float64 {
	v := make([]float64, d)
	for i := range v {
		v[i] = scale * rng.NormFloat64()
	}
	return v
}

func normalise(v []float64) {
	var s float64
	for _, x := range v {
		s += x
	}
	for i := range v {
		v[i] /= s
	}
}

// Draw returns a window of n events of which a fraction shift (in
// expectation) come from the new domain; every event is embedded.
func (s *Synthetic) Draw(rng *rand.Rand, n int, shift float64) *Sample {
	out := &Sample{Classes: map[string]float64{}}
	for i := range n {
		row, emb, truth := s.event(rng, rng.Float64() < shift)
		out.truth = append(out.truth, truth)
		row.EventID = fmt.Sprintf("e%d-%d", i, rng.Uint32())
		out.Classes[row.Class]++
		out.Rows = append(out.Rows, row)
		out.Embeddings = append(out.Embeddings, emb)
		out.EmbeddingIDs = append(out.EmbeddingIDs, row.EventID)
	}
	return out
}

func (s *Synthetic) event(rng *rand.Rand, shifted bool) (Row, []float32, string) {
	acc, lo, hi := 0.95, 0.80, 0.99
	if shifted {
		acc, lo, hi = 0.50, 0.35, 0.70
	}
	truth := pickIndex(rng, s.mix)
	pred := truth
	if rng.Float64() >= acc {
		if shifted && rng.Float64() < 0.85 {
			pred = 10 + rng.IntN(2) // the look-alike classes
		} else {
			pred = rng.IntN(12)
		}
	}
	top := lo + (hi-lo)*rng.Float64()
	probs := make([]float64, 12)
	var rest float64
	for i := range probs {
		if i != pred {
			probs[i] = 0.2 + rng.ExpFloat64()
			rest += probs[i]
		}
	}
	row := Row{Class: s.classes[pred], Probs: make(map[string]float64, 12), Confidence: top}
	second := 0.0
	for i := range probs {
		if i != pred {
			// Scale the rest so that it sums to 1−top and never rivals top.
			probs[i] *= (1 - top) / rest
			second = max(second, probs[i])
		} else {
			probs[i] = top
		}
		row.Probs[s.classes[i]] = probs[i]
		row.Entropy -= probs[i] * math.Log(probs[i])
	}
	row.Margin = top - second
	v := make([]float64, s.dim)
	var norm float64
	for j := range v {
		v[j] = s.centroids[truth][j] + rng.NormFloat64()
		if shifted {
			v[j] += synthShiftNorm * s.direction[j]
		}
		norm += v[j] * v[j]
	}
	// The service stores L2-normalised embeddings; so does the model.
	emb := make([]float32, s.dim)
	for j := range v {
		emb[j] = float32(v[j] / math.Sqrt(norm))
	}
	return row, emb, s.classes[truth]
}

func pickIndex(rng *rand.Rand, w []float64) int {
	u := rng.Float64()
	for i, p := range w {
		if u < p {
			return i
		}
		u -= p
	}
	return len(w) - 1
}

// CalibrationOptions configure Calibrate.
type CalibrationOptions struct {
	Params Params
	// NullRuns windows pairs with no shift per test; PowerRuns pairs per
	// shift size; DelayRuns streams per shift size for detection delay.
	NullRuns, PowerRuns, DelayRuns int
	// N is the number of events in each window.
	N int
	// Shifts are the shift sizes δ for power and delay.
	Shifts []float64
	// DelayStep is how many events arrive between evaluations of a stream;
	// DelayMax bounds the post-onset events watched before giving up.
	DelayStep, DelayMax int
	Seed                uint64
	// Tests selects the tests to calibrate (all of Tests when empty).
	Tests []string
	// Progress, when set, is called after each block of work.
	Progress func(string)
}

// DefaultCalibrationOptions are what `lookout drift calibrate` runs.
func DefaultCalibrationOptions(p Params) CalibrationOptions {
	return CalibrationOptions{Params: p, NullRuns: 200, PowerRuns: 100, DelayRuns: 40, N: 300,
		Shifts: []float64{0.05, 0.1, 0.2, 0.4}, DelayStep: 30, DelayMax: 900, Seed: 1}
}

// TestCalibration is the calibration of one test.
type TestCalibration struct {
	Test string
	// Significant counts null runs with p < α (is the p-value honest?),
	// Alarms null runs that flagged (p < α and effect ≥ floor).
	NullRuns         int
	Significant      int
	Alarms           int
	SignificantCI    stats.Interval // 95% Clopper–Pearson on Significant/NullRuns
	AlarmCI          stats.Interval
	Power            []float64 // per shift: share of runs that flagged
	PowerSignificant []float64 // per shift: share of runs with p < α, whatever the effect
	MedianDelay      []float64 // per shift: median post-onset events until the first alarm (NaN if mostly undetected)
	Detected         []int     // per shift: streams detected within DelayMax
	DelayRuns        int
}

// Calibration is the outcome of Calibrate.
type Calibration struct {
	Options CalibrationOptions
	Tests   []TestCalibration
}

// Calibrate measures, for every test, the false-alarm rate on windows with
// no shift, the power against shifts of known size, and the detection delay
// on streams whose shift starts at a known event.
func Calibrate(ctx context.Context, o CalibrationOptions) (Calibration, error) {
	syn := NewSynthetic(o.Seed)
	cal := Calibration{Options: o}
	tests := o.Tests
	if len(tests) == 0 {
		tests = Tests
	}
	for _, test := range tests {
		ti := slices.Index(Tests, test)
		if ti < 0 {
			return cal, fmt.Errorf("calibrate: unknown test %q", test)
		}
		tc := TestCalibration{Test: test, NullRuns: o.NullRuns, DelayRuns: o.DelayRuns}
		rng := rand.New(rand.NewPCG(o.Seed, uint64(ti)))
		for run := range o.NullRuns {
			if err := ctx.Err(); err != nil {
				return cal, err
			}
			r := o.evaluate(test, syn.Draw(rng, o.N, 0), syn.Draw(rng, o.N, 0), run)
			if r.PValue < o.Params.Alpha {
				tc.Significant++
			}
			if r.Flagged() {
				tc.Alarms++
			}
		}
		tc.SignificantCI, _ = stats.ClopperPearson(tc.Significant, max(o.NullRuns, 1), 0.05)
		tc.AlarmCI, _ = stats.ClopperPearson(tc.Alarms, max(o.NullRuns, 1), 0.05)
		for si, shift := range o.Shifts {
			hits, sig := 0, 0
			for run := range o.PowerRuns {
				if err := ctx.Err(); err != nil {
					return cal, err
				}
				r := o.evaluate(test, syn.Draw(rng, o.N, 0), syn.Draw(rng, o.N, shift), 1e6+si*o.PowerRuns+run)
				if r.Flagged() {
					hits++
				}
				if r.PValue < o.Params.Alpha {
					sig++
				}
			}
			tc.Power = append(tc.Power, float64(hits)/float64(max(o.PowerRuns, 1)))
			tc.PowerSignificant = append(tc.PowerSignificant, float64(sig)/float64(max(o.PowerRuns, 1)))
			delay, detected, err := o.delay(ctx, syn, rng, test, shift)
			if err != nil {
				return cal, err
			}
			tc.MedianDelay = append(tc.MedianDelay, delay)
			tc.Detected = append(tc.Detected, detected)
		}
		cal.Tests = append(cal.Tests, tc)
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("%s: null p<α %d/%d, alarms %d/%d, power %v", test, tc.Significant, tc.NullRuns,
				tc.Alarms, tc.NullRuns, tc.Power))
		}
	}
	return cal, nil
}

func (o CalibrationOptions) evaluate(test string, ref, cur *Sample, run int) Result {
	p := o.Params
	p.Seed = SeedFor(test, fmt.Sprint(run), fmt.Sprint(o.Seed))
	p.ProjectionSeed = SeedFor("projections", "synthetic")
	return EvaluateTest(test, ref, cur, p)
}

// delay runs DelayRuns streams: a reference window, then events whose
// shift begins at the first one; every DelayStep events the current window
// (the last N events, old and new domain mixed) is tested. The delay is
// the number of post-onset events seen at the first alarm. Streams not
// detected within DelayMax count as +Inf, so the median is NaN when half
// or more of them were missed.
func (o CalibrationOptions) delay(ctx context.Context, syn *Synthetic, rng *rand.Rand, test string, shift float64) (float64, int, error) {
	var delays []float64
	detected := 0
	for run := range o.DelayRuns {
		ref := syn.Draw(rng, o.N, 0)
		pre := syn.Draw(rng, o.N, 0)
		post := syn.Draw(rng, o.DelayMax, shift)
		d := math.Inf(1)
		for k := o.DelayStep; k <= o.DelayMax; k += o.DelayStep {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			cur := window(pre, post, k, o.N)
			if o.evaluate(test, ref, cur, 2e6+run*1000+k).Flagged() {
				d = float64(k)
				detected++
				break
			}
		}
		delays = append(delays, d)
	}
	if len(delays) == 0 {
		return math.NaN(), 0, nil
	}
	sort.Float64s(delays)
	med := delays[(len(delays)-1)/2]
	if math.IsInf(med, 1) {
		med = math.NaN()
	}
	return med, detected, nil
}

// window is the last n events after k post-onset events arrived: the tail
// of pre followed by post[:k].
func window(pre, post *Sample, k, n int) *Sample {
	k = min(k, len(post.Rows))
	from := max(0, len(pre.Rows)-(n-min(k, n)))
	out := &Sample{Classes: map[string]float64{}}
	out.Rows = append(slices.Clone(pre.Rows[from:]), post.Rows[max(0, k-n):k]...)
	out.Embeddings = append(slices.Clone(pre.Embeddings[from:]), post.Embeddings[max(0, k-n):k]...)
	out.EmbeddingIDs = append(slices.Clone(pre.EmbeddingIDs[from:]), post.EmbeddingIDs[max(0, k-n):k]...)
	for _, r := range out.Rows {
		out.Classes[r.Class]++
	}
	return out
}
