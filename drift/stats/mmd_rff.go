package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"
)

// RFFResult is the outcome of MMDRFFTest.
type RFFResult struct {
	// MMD2 is the unbiased squared MMD under the random-feature
	// approximation of the RBF kernel; it estimates the same quantity as
	// MMDResult.MMD2, with an extra error of order 1/√Features.
	MMD2 float64
	// PValue is the permutation p-value, (1+#{permuted ≥ observed})/(1+B).
	PValue float64
	// Bandwidth is σ of the approximated kernel exp(-‖a-b‖²/(2σ²)).
	Bandwidth float64
	// Features is D, the number of random Fourier features.
	Features int
	// Permutations is B.
	Permutations int
	// NX and NY are the sample sizes.
	NX, NY int
}

// rffBandwidthSample bounds the points used for the median heuristic: the
// median of ~500k pairwise distances is as good as that of all of them.
const rffBandwidthSample = 1000

// MMDRFFTest is the scalable variant of MMDTest for large windows. It maps
// every point once to D random Fourier features φ(z) = √(2/D)·cos(Wz+b)
// with W ~ N(0, I/σ²), b ~ U[0, 2π) (Rahimi & Recht 2007), so that
// φ(a)·φ(b) ≈ exp(-‖a-b‖²/(2σ²)); the unbiased MMD² is then a function of
// the per-group feature sums and a permuted split costs O(min(n,m)·D)
// instead of O(min(n,m)²).
//
// Trade-off: memory is O((n+m)·D) instead of O((n+m)²) and there is no
// MMDMaxPooled cap, but the kernel is approximated, so power is a little
// lower than the exact test at the same sample size (the p-value stays
// valid: the features are drawn independently of the split, and the
// bandwidth comes from a random subsample of the pooled data, as in
// MMDTest). σ uses MMDTest's median heuristic on at most 1000 pooled points.
func MMDRFFTest(x, y [][]float32, features, permutations int, rng *rand.Rand) (RFFResult, error) {
	if features < 1 {
		return RFFResult{}, fmt.Errorf("stats: MMD RFF needs at least 1 feature, got %d", features)
	}
	if rng == nil {
		return RFFResult{}, fmt.Errorf("stats: MMD RFF needs a non-nil rng")
	}
	if err := checkSamples(x, y, permutations); err != nil {
		return RFFResult{}, err
	}
	pooled := toFloat64Rows(x, y)
	sigma2 := rffBandwidth(pooled, rng)
	phi := randomFeatures(pooled, features, sigma2, rng)
	rs := newRFFSums(phi, len(x), features)
	observed := rs.mmd2(rs.observedGroup())
	exceed := 0
	g := make([]int, rs.ng)
	idx, picked := make([]int, rs.n), make([]bool, rs.n)
	ks := &kernelSums{n: rs.n, ng: rs.ng}
	for range permutations {
		ks.randomGroup(g, idx, picked, rng)
		if rs.mmd2(g) >= observed {
			exceed++
		}
	}
	return RFFResult{
		MMD2: observed, PValue: float64(1+exceed) / float64(1+permutations),
		Bandwidth: math.Sqrt(sigma2), Features: features, Permutations: permutations,
		NX: len(x), NY: len(y),
	}, nil
}

// checkSamples validates two samples of vectors for an MMD test: enough
// points, one dimension, finite coordinates.
func checkSamples(x, y [][]float32, permutations int) error {
	if len(x) < 2 || len(y) < 2 {
		return fmt.Errorf("stats: MMD needs at least 2 points per sample, got %d and %d", len(x), len(y))
	}
	if permutations < 0 {
		return fmt.Errorf("stats: negative permutation count %d", permutations)
	}
	dim := len(x[0])
	if dim == 0 {
		return errors.New("stats: MMD points have zero dimension")
	}
	for s, sample := range [][][]float32{x, y} {
		for i, v := range sample {
			if len(v) != dim {
				return fmt.Errorf("stats: MMD sample %d point %d has dimension %d, want %d", s, i, len(v), dim)
			}
			for _, c := range v {
				if math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
					return fmt.Errorf("stats: MMD sample %d point %d has a non-finite coordinate", s, i)
				}
			}
		}
	}
	return nil
}

func rffBandwidth(pooled [][]float64, rng *rand.Rand) float64 {
	sub := pooled
	if len(pooled) > rffBandwidthSample {
		perm := rng.Perm(len(pooled))[:rffBandwidthSample]
		sub = make([][]float64, len(perm))
		for i, p := range perm {
			sub[i] = pooled[p]
		}
	}
	return medianHeuristic(squaredDistances(sub), len(sub))
}

// randomFeatures returns the N×D feature matrix, row-major.
func randomFeatures(z [][]float64, d int, sigma2 float64, rng *rand.Rand) []float64 {
	dim := len(z[0])
	w := make([][]float64, d)
	b := make([]float64, d)
	inv := 1 / math.Sqrt(sigma2)
	for j := range w {
		w[j] = make([]float64, dim)
		for k := range w[j] {
			w[j][k] = rng.NormFloat64() * inv
		}
		b[j] = rng.Float64() * 2 * math.Pi
	}
	scale := math.Sqrt(2 / float64(d))
	phi := make([]float64, len(z)*d)
	parallelRows(len(z), func(i int) {
		row := phi[i*d : (i+1)*d]
		for j := range row {
			row[j] = scale * math.Cos(floats.Dot(w[j], z[i])+b[j])
		}
	})
	return phi
}

// rffSums holds what every split needs: the total feature sum and each
// point's squared feature norm (its approximate k(z,z)).
type rffSums struct {
	phi     []float64
	n, nx   int
	ng      int
	d       int
	total   []float64
	norms   []float64
	normSum float64
	gsum    []float64
}

func newRFFSums(phi []float64, nx, d int) *rffSums {
	n := len(phi) / d
	rs := &rffSums{phi: phi, n: n, nx: nx, ng: min(nx, n-nx), d: d,
		total: make([]float64, d), norms: make([]float64, n), gsum: make([]float64, d)}
	for i := range n {
		row := phi[i*d : (i+1)*d]
		floats.Add(rs.total, row)
		rs.norms[i] = floats.Dot(row, row)
		rs.normSum += rs.norms[i]
	}
	return rs
}

func (rs *rffSums) observedGroup() []int {
	start := 0
	if rs.nx > rs.n-rs.nx {
		start = rs.nx
	}
	g := make([]int, rs.ng)
	for i := range g {
		g[i] = start + i
	}
	return g
}

// mmd2 is the unbiased estimator with k(a,b) = φ(a)·φ(b): for a group sum
// S_g and the rest S_o = S − S_g, Σ_{i≠j∈g} k = |S_g|² − Σ_{i∈g} |φ_i|².
func (rs *rffSums) mmd2(g []int) float64 {
	clear(rs.gsum)
	var gn float64
	for _, i := range g {
		floats.Add(rs.gsum, rs.phi[i*rs.d:(i+1)*rs.d])
		gn += rs.norms[i]
	}
	var gg, oo, cross float64
	for j, s := range rs.gsum {
		o := rs.total[j] - s
		gg += s * s
		oo += o * o
		cross += s * o
	}
	on := rs.normSum - gn
	ng, no := float64(len(g)), float64(rs.n-len(g))
	return (gg-gn)/(ng*(ng-1)) + (oo-on)/(no*(no-1)) - 2*cross/(ng*no)
}
