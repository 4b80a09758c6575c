package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

func gaussianSample(rng *rand.Rand, n, d int, mean float64) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, d)
		for j := range out[i] {
			out[i][j] = float32(rng.NormFloat64() + mean)
		}
	}
	return out
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// naiveMMD2 is the textbook unbiased estimator, written out pair by pair,
// to check the row-sum shortcuts in kernelSums.
func naiveMMD2(x, y [][]float32, sigma float64) float64 {
	k := func(a, b []float32) float64 {
		var d2 float64
		for i := range a {
			diff := float64(a[i]) - float64(b[i])
			d2 += diff * diff
		}
		return math.Exp(-d2 / (2 * sigma * sigma))
	}
	within := func(s [][]float32) float64 {
		var sum float64
		for i := range s {
			for j := range s {
				if i != j {
					sum += k(s[i], s[j])
				}
			}
		}
		n := float64(len(s))
		return sum / (n * (n - 1))
	}
	var cross float64
	for _, a := range x {
		for _, b := range y {
			cross += k(a, b)
		}
	}
	return within(x) + within(y) - 2*cross/float64(len(x)*len(y))
}

func TestMMDStatisticMatchesNaive(t *testing.T) {
	rng := seeded(1)
	for _, sizes := range [][2]int{{30, 20}, {20, 30}, {25, 25}} {
		x := gaussianSample(rng, sizes[0], 5, 0)
		y := gaussianSample(rng, sizes[1], 5, 0.3)
		res, err := MMDTest(x, y, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveMMD2(x, y, res.Bandwidth); math.Abs(res.MMD2-want) > 1e-12 {
			t.Errorf("sizes %v: MMD2 = %.17g, naive %.17g", sizes, res.MMD2, want)
		}
		if res.PValue != 1 || res.Permutations != 0 || res.NX != sizes[0] || res.NY != sizes[1] {
			t.Errorf("sizes %v: unexpected %+v", sizes, res)
		}
	}
}

// Every permuted split must be scored exactly like an observed one.
func TestMMDPermutedSplitMatchesNaive(t *testing.T) {
	rng := seeded(2)
	x := gaussianSample(rng, 12, 3, 0)
	y := gaussianSample(rng, 17, 3, 0)
	pooled := append(append([][]float32{}, x...), y...)
	k, sigma2 := rbfKernelMatrix(toFloat64Rows(x, y))
	ks := newKernelSums(k, len(pooled), len(x), len(y))
	group, idx, picked := make([]int, 12), make([]int, len(pooled)), make([]bool, len(pooled))
	for range 5 {
		ks.randomGroup(group, idx, picked, rng)
		var g, o [][]float32
		for i, in := range picked {
			if in {
				g = append(g, pooled[i])
			} else {
				o = append(o, pooled[i])
			}
		}
		if !slices.IsSorted(group) || len(g) != 12 || pooled[group[0]][0] != g[0][0] {
			t.Fatalf("group %v does not match the %d picked points", group, len(g))
		}
		if got, want := ks.mmd2(group), naiveMMD2(g, o, math.Sqrt(sigma2)); math.Abs(got-want) > 1e-12 {
			t.Errorf("permuted MMD2 = %.17g, naive %.17g", got, want)
		}
	}
}

// The median heuristic convention: σ² = median pairwise squared distance / 2.
func TestMMDBandwidthIsMedianHeuristic(t *testing.T) {
	x := [][]float32{{0}, {1}}
	y := [][]float32{{3}, {7}}
	// Squared distances: 1, 9, 49, 4, 36, 16 → median (9+16)/2 = 12.5.
	res, err := MMDTest(x, y, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Sqrt(12.5 / 2); math.Abs(res.Bandwidth-want) > 1e-15 {
		t.Errorf("Bandwidth = %v, want %v", res.Bandwidth, want)
	}
}

func TestMMDDegenerateBandwidth(t *testing.T) {
	same := [][]float32{{1, 2}, {1, 2}, {1, 2}}
	res, err := MMDTest(same, same, 10, seeded(3))
	if err != nil {
		t.Fatal(err)
	}
	if res.Bandwidth != 1 || res.MMD2 != 0 || res.PValue != 1 {
		t.Errorf("identical points: %+v", res)
	}
	// Mostly duplicates: the median is 0, so the mean positive distance is used.
	dup := [][]float32{{0}, {0}, {0}, {0}}
	res, err = MMDTest(dup, [][]float32{{0}, {2}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Sqrt(4.0 / 2); math.Abs(res.Bandwidth-want) > 1e-15 {
		t.Errorf("Bandwidth = %v, want %v", res.Bandwidth, want)
	}
}

// Under the null the permutation test is exact: with B = 199 and α = 0.05
// the rejection probability is exactly 10/200, so over 100 independent runs
// the rejection count is Binomial(100, 0.05) and must land inside its
// central 99.9% interval.
func TestMMDNullCalibration(t *testing.T) {
	const runs, alpha = 100, 0.05
	rejections := 0
	for seed := range uint64(runs) {
		rng := seeded(100 + seed)
		x := gaussianSample(rng, 50, 8, 0)
		y := gaussianSample(rng, 50, 8, 0)
		res, err := MMDTest(x, y, 199, rng)
		if err != nil {
			t.Fatal(err)
		}
		if res.PValue <= alpha {
			rejections++
		}
	}
	binom := distuv.Binomial{N: runs, P: alpha}
	lo, hi := 0, runs
	for lo < runs && binom.CDF(float64(lo)) < 0.0005 {
		lo++
	}
	for hi > 0 && 1-binom.CDF(float64(hi-1)) < 0.0005 {
		hi--
	}
	t.Logf("%d/%d null rejections at α=%v (99.9%% interval [%d, %d])", rejections, runs, alpha, lo, hi)
	if rejections < lo || rejections > hi {
		t.Errorf("%d rejections outside [%d, %d]", rejections, lo, hi)
	}
}

// A shift of 0.5σ in every one of 16 coordinates with 100 points a side.
func TestMMDDetectsMeanShift(t *testing.T) {
	rng := seeded(7)
	x := gaussianSample(rng, 100, 16, 0)
	y := gaussianSample(rng, 100, 16, 0.5)
	res, err := MMDTest(x, y, 500, rng)
	if err != nil {
		t.Fatal(err)
	}
	if res.PValue >= 0.01 {
		t.Errorf("p = %v for a 0.5σ shift, want < 0.01 (%+v)", res.PValue, res)
	}
}

// The add-one rule keeps p away from 0: an unmistakable shift gets the
// smallest attainable value, 1/(1+B), exactly.
func TestMMDMinimumPValue(t *testing.T) {
	rng := seeded(8)
	x := gaussianSample(rng, 40, 4, 0)
	y := gaussianSample(rng, 40, 4, 10)
	for _, b := range []int{1, 99, 250} {
		res, err := MMDTest(x, y, b, rng)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 / float64(1+b); res.PValue != want {
			t.Errorf("B=%d: p = %v, want %v", b, res.PValue, want)
		}
	}
}

// Testing a sample against a shuffled copy of itself: with the unbiased
// estimator the statistic is not exactly 0 but −2(1−k̄)/n, where k̄ is the
// mean off-diagonal kernel value, because the cross term counts each
// point's zero distance to its own copy. That is within 2/n of 0.
func TestMMDSelfPermutedIsNearZero(t *testing.T) {
	rng := seeded(9)
	const n = 100
	x := gaussianSample(rng, n, 16, 0)
	y := append([][]float32{}, x...)
	rng.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
	res, err := MMDTest(x, y, 200, rng)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for i := range x {
		for j := range x {
			if i != j {
				var d2 float64
				for c := range x[i] {
					diff := float64(x[i][c]) - float64(x[j][c])
					d2 += diff * diff
				}
				sum += math.Exp(-d2 / (2 * res.Bandwidth * res.Bandwidth))
			}
		}
	}
	want := -2 * (1 - sum/(n*(n-1))) / n
	if math.Abs(res.MMD2-want) > 1e-12 || math.Abs(res.MMD2) > 2.0/n {
		t.Errorf("MMD2 = %.17g, want %.17g (|·| ≤ %v)", res.MMD2, want, 2.0/n)
	}
	if res.PValue < 0.5 {
		t.Errorf("p = %v for identical samples", res.PValue)
	}
}

func TestMMDReproducible(t *testing.T) {
	rng := seeded(10)
	x := gaussianSample(rng, 60, 6, 0)
	y := gaussianSample(rng, 70, 6, 0.2)
	a, _ := MMDTest(x, y, 300, seeded(11))
	b, _ := MMDTest(x, y, 300, seeded(11))
	if a != b {
		t.Errorf("same seed, different results: %+v vs %+v", a, b)
	}
}

func TestMMDErrors(t *testing.T) {
	ok := [][]float32{{1, 2}, {3, 4}}
	cases := map[string]struct {
		x, y [][]float32
		b    int
		rng  *rand.Rand
	}{
		"empty x":         {nil, ok, 10, seeded(1)},
		"single y":        {ok, ok[:1], 10, seeded(1)},
		"dim mismatch":    {ok, [][]float32{{1, 2}, {3}}, 10, seeded(1)},
		"cross mismatch":  {ok, [][]float32{{1, 2, 3}, {4, 5, 6}}, 10, seeded(1)},
		"zero dim":        {[][]float32{{}, {}}, [][]float32{{}, {}}, 10, seeded(1)},
		"NaN":             {ok, [][]float32{{1, float32(math.NaN())}, {3, 4}}, 10, seeded(1)},
		"Inf":             {[][]float32{{1, float32(math.Inf(1))}, {3, 4}}, ok, 10, seeded(1)},
		"negative B":      {ok, ok, -1, seeded(1)},
		"nil rng":         {ok, ok, 10, nil},
		"too many points": {make([][]float32, MMDMaxPooled), ok, 0, nil},
	}
	for name, c := range cases {
		if _, err := MMDTest(c.x, c.y, c.b, c.rng); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkMMDTest300x300d384p500(b *testing.B) {
	rng := seeded(42)
	x := gaussianSample(rng, 300, 384, 0)
	y := gaussianSample(rng, 300, 384, 0.05)
	for i := 0; b.Loop(); i++ {
		if _, err := MMDTest(x, y, 500, seeded(uint64(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// The yardstick: 2,000 + 2,000 vectors of 384 dimensions, 1,000
// permutations.
func BenchmarkMMDTest2000x2000d384p1000(b *testing.B) {
	rng := seeded(42)
	x := gaussianSample(rng, 2000, 384, 0)
	y := gaussianSample(rng, 2000, 384, 0.02)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := MMDTest(x, y, 1000, seeded(uint64(i))); err != nil {
			b.Fatal(err)
		}
	}
}
