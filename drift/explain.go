package drift

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/lookout-dev/lookout/drift/stats"
)

// classShifts lists the classes whose share of predictions moved most.
func classShifts(ref, cur map[string]float64) []Explanation {
	rt, ct := float64(total(ref)), float64(total(cur))
	if rt == 0 || ct == 0 {
		return nil
	}
	seen := make(map[string]bool)
	var out []Explanation
	for _, m := range []map[string]float64{ref, cur} {
		for c := range m {
			if !seen[c] {
				seen[c] = true
				out = append(out, Explanation{Kind: ExplainClass, Item: c, Value: cur[c]/ct - ref[c]/rt, PValue: math.NaN(),
					Detail: fmt.Sprintf("share %.1f%% → %.1f%%", 100*ref[c]/rt, 100*cur[c]/ct)})
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		da, db := math.Abs(out[a].Value), math.Abs(out[b].Value)
		if da != db {
			return da > db
		}
		return out[a].Item < out[b].Item
	})
	return out[:min(len(out), maxExplain)]
}

func describeShifts(e []Explanation, n int) string {
	var parts []string
	for _, x := range e[:min(n, len(e))] {
		parts = append(parts, fmt.Sprintf("%s %+.1f%%", x.Item, 100*x.Value))
	}
	return strings.Join(parts, ", ")
}

// minSliceRows is the least number of rows per side for a class slice to be
// tested; smaller slices say nothing a KS test could trust.
const minSliceRows = 10

// classSlices tests, per predicted class, whether the confidence inside
// the slice moved (KS, Benjamini–Hochberg across slices). A slice whose
// confidence dropped while its share grew is where a shift usually lands.
func classSlices(ref, cur []Row, p Params) []Explanation {
	byClass := func(rows []Row) map[string][]float64 {
		m := make(map[string][]float64)
		for _, x := range rows {
			m[x.Class] = append(m[x.Class], x.Confidence)
		}
		return m
	}
	rc, cc := byClass(ref), byClass(cur)
	var names []string
	for c := range cc {
		if len(rc[c]) >= minSliceRows && len(cc[c]) >= minSliceRows {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	ps := make([]float64, len(names))
	for i, c := range names {
		res, err := stats.KSTwoSample(rc[c], cc[c])
		ps[i] = math.NaN()
		if err == nil {
			ps[i] = res.PValue
		}
	}
	qs := stats.BenjaminiHochberg(ps)
	out := make([]Explanation, 0, len(names))
	for i, c := range names {
		out = append(out, Explanation{Kind: ExplainSlice, Item: c, Value: mean(cc[c]) - mean(rc[c]), PValue: qs[i],
			Detail: fmt.Sprintf("confidence %.3f → %.3f, rows %d → %d", mean(rc[c]), mean(cc[c]), len(rc[c]), len(cc[c]))})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].PValue < out[b].PValue })
	return out[:min(len(out), maxExplain)]
}

// maxNeighbourSearch caps each side of the nearest-reference search.
const maxNeighbourSearch = 1000

// unusualEvents names the current-window events whose embedding is farthest
// from its nearest reference embedding: the images that look least like the
// reference, which the active-learning queue can put first.
func unusualEvents(ref, cur *Sample) []Explanation {
	if len(cur.EmbeddingIDs) != len(cur.Embeddings) {
		return nil
	}
	type scored struct {
		i int
		d float64
	}
	// Both samples are pseudo-random subsamples already; capping them keeps
	// this O(n·m·d) search cheap on large windows.
	curE, refE := cur.Embeddings[:min(len(cur.Embeddings), maxNeighbourSearch)], ref.Embeddings[:min(len(ref.Embeddings), maxNeighbourSearch)]
	if len(refE) == 0 {
		return nil
	}
	dim := len(refE[0])
	refF := widen(refE)
	y := make([]float64, dim)
	out := make([]scored, 0, len(curE))
	for i, v := range curE {
		if len(v) != dim {
			continue // not of this embedding space
		}
		for j, c := range v {
			y[j] = float64(c)
		}
		best := math.Inf(1)
		for k := range refE {
			best = min(best, sqDistBelow(y, refF[k*dim:(k+1)*dim], best))
		}
		out = append(out, scored{i, math.Sqrt(best)})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].d != out[b].d {
			return out[a].d > out[b].d
		}
		return cur.EmbeddingIDs[out[a].i] < cur.EmbeddingIDs[out[b].i]
	})
	var ex []Explanation
	for _, s := range out[:min(len(out), maxExplain)] {
		ex = append(ex, Explanation{Kind: ExplainEvent, Item: cur.EmbeddingIDs[s.i], Value: s.d, PValue: math.NaN(),
			Detail: "distance to the nearest reference embedding"})
	}
	return ex
}

// widen copies vectors into one float64 slice, row after row, each padded
// or cut to the length of the first, so the distance loop neither converts
// nor chases pointers.
func widen(x [][]float32) []float64 {
	dim := len(x[0])
	out := make([]float64, len(x)*dim)
	for i, v := range x {
		for j, c := range v[:min(len(v), dim)] {
			out[i*dim+j] = float64(c)
		}
	}
	return out
}

// sqDistBelow returns the squared distance of a and b (same length), or
// some value ≥ bound as soon as the partial sum reaches it: a nearest-
// neighbour search only needs distances below the best so far, and most
// candidates exceed it within the first blocks of coordinates. That, four
// independent sums and converting once made the search 2.3× faster on
// 300 + 300 random 384-d vectors (BenchmarkUnusualEvents; clustered real
// embeddings abandon earlier).
func sqDistBelow(a, b []float64, bound float64) float64 {
	const block = 32
	b = b[:len(a)]
	var s float64
	for j := 0; j < len(a); j += block {
		end := min(j+block, len(a))
		var s0, s1, s2, s3 float64
		k := j
		for ; k+4 <= end; k += 4 {
			d0, d1, d2, d3 := a[k]-b[k], a[k+1]-b[k+1], a[k+2]-b[k+2], a[k+3]-b[k+3]
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		for ; k < end; k++ {
			d := a[k] - b[k]
			s0 += d * d
		}
		s += (s0 + s1) + (s2 + s3)
		if s >= bound {
			return s
		}
	}
	return s
}

// dimensionShifts ranks embedding coordinates by their standardised mean
// shift (difference of means over the pooled standard deviation).
func dimensionShifts(ref, cur [][]float32) []Explanation {
	dim := len(ref[0])
	type shift struct {
		j int
		z float64
	}
	out := make([]shift, dim)
	for j := range dim {
		mr, vr := moments(ref, j)
		mc, vc := moments(cur, j)
		sd := math.Sqrt((vr + vc) / 2)
		z := 0.0
		if sd > 0 {
			z = (mc - mr) / sd
		}
		out[j] = shift{j, z}
	}
	sort.Slice(out, func(a, b int) bool {
		if math.Abs(out[a].z) != math.Abs(out[b].z) {
			return math.Abs(out[a].z) > math.Abs(out[b].z)
		}
		return out[a].j < out[b].j
	})
	var ex []Explanation
	for _, s := range out[:min(len(out), 5)] {
		ex = append(ex, Explanation{Kind: ExplainDimension, Item: fmt.Sprintf("dim-%d", s.j), Value: s.z, PValue: math.NaN(),
			Detail: "standardised mean shift"})
	}
	return ex
}

func moments(x [][]float32, j int) (m, v float64) {
	for _, row := range x {
		m += float64(row[j])
	}
	m /= float64(len(x))
	for _, row := range x {
		d := float64(row[j]) - m
		v += d * d
	}
	if len(x) > 1 {
		v /= float64(len(x) - 1)
	}
	return m, v
}

// Accuracy methods, as stored in drift_accuracy and the method label.
const (
	AccuracyAvgConfidence = "avg_confidence" // mean top-class confidence of the current window
	AccuracyATC           = "atc"            // average thresholded confidence, fitted on the reference
	AccuracyRealised      = "realised"       // from labels in the current window
	AccuracyReference     = "reference_realised"
)

// Accuracy is the estimated (label-free) and realised accuracy of a scope's
// current window. Unknown values are NaN.
type Accuracy struct {
	// AvgConfidence is the label-free estimate of CBPE-style methods: with
	// calibrated confidences, expected accuracy = mean confidence.
	AvgConfidence float64
	// ATC (Garg et al. 2022) picks the confidence threshold t at which the
	// share of reference predictions above t equals the reference's
	// accuracy (realised from labels, or its mean confidence without
	// them), and estimates current accuracy as the share above t. It
	// stays closer to the truth than AvgConfidence when the model is
	// over- or under-confident but consistently so.
	ATC       float64
	Threshold float64
	// Realised is the share of labelled current events predicted right;
	// RefRealised the same on the reference.
	Realised, RefRealised float64
	Labeled, RefLabeled   int
	N                     int
}

// EstimateAccuracy computes Accuracy from the windows' subsamples and label
// counts.
func EstimateAccuracy(ref, cur *Sample) Accuracy {
	a := Accuracy{AvgConfidence: math.NaN(), ATC: math.NaN(), Threshold: math.NaN(),
		Realised: ratio(cur.Correct, cur.Labeled), RefRealised: ratio(ref.Correct, ref.Labeled),
		Labeled: cur.Labeled, RefLabeled: ref.Labeled, N: len(cur.Rows)}
	conf := func(x Row) float64 { return x.Confidence }
	rc, cc := rowValues(ref.Rows, conf), rowValues(cur.Rows, conf)
	if len(cc) > 0 {
		a.AvgConfidence = mean(cc)
	}
	if len(rc) == 0 || len(cc) == 0 {
		return a
	}
	target := a.RefRealised
	if math.IsNaN(target) {
		target = mean(rc)
	}
	slices.Sort(rc)
	// The share of rc strictly above rc[k] is (n−1−k)/n; choose the
	// threshold whose share is nearest to target.
	n := len(rc)
	k := min(max(int(math.Round(float64(n)*(1-target)))-1, -1), n-1)
	a.Threshold = math.Inf(-1)
	if k >= 0 {
		a.Threshold = rc[k]
	}
	above := 0
	for _, c := range cc {
		if c > a.Threshold {
			above++
		}
	}
	a.ATC = float64(above) / float64(len(cc))
	return a
}

func ratio(k, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(k) / float64(n)
}
