package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/floats"
)

// MMDMaxPooled caps n+m for MMDTest. The pooled kernel matrix is held in
// memory as float64 (plus a half-size scratch copy while the bandwidth is
// chosen), so peak memory is about 12·(n+m)² bytes: ~800 MB at the cap.
// Callers with more data should subsample rather than have the process die.
const MMDMaxPooled = 8192

// MMDResult is the outcome of a kernel two-sample test.
type MMDResult struct {
	// MMD2 is the unbiased estimate of the squared maximum mean
	// discrepancy. Being unbiased it can be slightly negative when the
	// samples come from the same distribution.
	MMD2 float64
	// PValue is the permutation p-value, (1+#{permuted ≥ observed})/(1+B).
	// It is never 0: with B permutations the smallest value is 1/(1+B).
	PValue float64
	// Bandwidth is σ of the RBF kernel exp(-‖a-b‖²/(2σ²)), where
	// σ² = median pairwise squared distance of the pooled sample / 2.
	Bandwidth float64
	// Permutations is B, the number of permutations drawn.
	Permutations int
	// NX and NY are the sample sizes.
	NX, NY int
}

// MMDTest runs a permutation two-sample test with the unbiased squared MMD
// statistic and a Gaussian (RBF) kernel.
//
// Bandwidth convention: k(a,b) = exp(-‖a-b‖²/(2σ²)) with
// σ² = median{‖z_i-z_j‖² : i<j over the pooled sample z = x ∪ y} / 2,
// i.e. k(a,b) = exp(-‖a-b‖²/median). The median of an even number of
// distances is the mean of the two middle ones. If that median is 0
// (more than half the pairs are duplicates) the mean of the positive
// squared distances is used instead, and if every point is identical σ² is
// 1 (the kernel is then constant and the MMD is 0 whatever σ is).
//
// The null distribution comes from re-splitting the pooled sample into
// groups of sizes n and m uniformly at random, permutations times, using
// rng. Both samples need at least two points (the unbiased estimator
// divides by n(n-1)), the same non-zero dimension, finite values, and
// n+m ≤ MMDMaxPooled. rng may be nil only when permutations is 0.
//
// The kernel matrix and the permutations are spread over GOMAXPROCS
// goroutines, but random draws happen on the calling goroutine in a fixed
// order, so a given rng seed always yields the same result.
func MMDTest(x, y [][]float32, permutations int, rng *rand.Rand) (MMDResult, error) {
	if err := checkMMDInput(x, y, permutations, rng); err != nil {
		return MMDResult{}, err
	}
	pooled := toFloat64Rows(x, y)
	k, sigma2 := rbfKernelMatrix(pooled)
	km := newKernelSums(k, len(pooled), len(x), len(y))
	observed := km.mmd2(km.observedGroup())
	exceed := km.countPermutedAtLeast(observed, permutations, rng)
	return MMDResult{
		MMD2:         observed,
		PValue:       float64(1+exceed) / float64(1+permutations),
		Bandwidth:    math.Sqrt(sigma2),
		Permutations: permutations,
		NX:           len(x),
		NY:           len(y),
	}, nil
}

func checkMMDInput(x, y [][]float32, permutations int, rng *rand.Rand) error {
	if err := checkSamples(x, y, permutations); err != nil {
		return err
	}
	if len(x)+len(y) > MMDMaxPooled {
		return fmt.Errorf("stats: MMD pooled size %d exceeds MMDMaxPooled=%d; subsample first", len(x)+len(y), MMDMaxPooled)
	}
	if permutations > 0 && rng == nil {
		return errors.New("stats: MMD permutations need a non-nil rng")
	}
	return nil
}

// toFloat64Rows widens once up front so every dot product after this is
// done in float64; embeddings with d in the hundreds lose visible precision
// when accumulated in float32.
func toFloat64Rows(x, y [][]float32) [][]float64 {
	out := make([][]float64, 0, len(x)+len(y))
	for _, sample := range [][][]float32{x, y} {
		for _, v := range sample {
			row := make([]float64, len(v))
			for j, c := range v {
				row[j] = float64(c)
			}
			out = append(out, row)
		}
	}
	return out
}

// rbfKernelMatrix returns the dense symmetric N×N kernel matrix (row-major)
// and the σ² used. Rows are kept whole, not packed, because the permutation
// loop needs contiguous rows for fast dot products.
func rbfKernelMatrix(z [][]float64) ([]float64, float64) {
	n := len(z)
	k := squaredDistances(z)
	sigma2 := medianHeuristic(k, n)
	scale := -1 / (2 * sigma2)
	for i := range k {
		k[i] = math.Exp(k[i] * scale)
	}
	return k, sigma2
}

// squaredDistances uses ‖a‖²+‖b‖²−2a·b so the inner loop is one assembly
// dot product; the cancellation this invites is far below anything that
// moves a kernel value. Identical rows still give exactly 0 because both
// dot products run the same instruction sequence on the same data.
func squaredDistances(z [][]float64) []float64 {
	n := len(z)
	norms := make([]float64, n)
	for i, v := range z {
		norms[i] = floats.Dot(v, v)
	}
	d := make([]float64, n*n)
	parallelRows(n, func(i int) {
		for j := i + 1; j < n; j++ {
			v := max(norms[i]+norms[j]-2*floats.Dot(z[i], z[j]), 0)
			d[i*n+j] = v
			d[j*n+i] = v
		}
	})
	return d
}

// parallelRows spreads row work over the available CPUs. Rows are handed
// out round-robin because the triangular loops above make early rows the
// expensive ones.
func parallelRows(n int, row func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				row(i)
			}
		}()
	}
	wg.Wait()
}

// medianHeuristic picks σ² from the upper triangle of the squared distance
// matrix d. Using the pooled sample (not x alone) keeps the bandwidth
// invariant under relabelling, which is what makes the permutation test
// exact.
func medianHeuristic(d []float64, n int) float64 {
	upper := make([]float64, 0, n*(n-1)/2)
	for i := range n {
		upper = append(upper, d[i*n+i+1:(i+1)*n]...)
	}
	if med := median(upper); med > 0 {
		return med / 2
	}
	sum, count := 0.0, 0
	for _, v := range upper {
		if v > 0 {
			sum += v
			count++
		}
	}
	if count == 0 {
		return 1
	}
	return sum / float64(count) / 2
}

// median reorders v. Selection instead of a full sort matters here: the
// pooled sample of a few thousand points has millions of pairs.
func median(v []float64) float64 {
	mid := len(v) / 2
	hi := selectKth(v, mid)
	if len(v)%2 == 1 {
		return hi
	}
	// After selection every element left of mid is ≤ v[mid], so the lower
	// middle value is simply the largest of them.
	lo := v[0]
	for _, x := range v[1:mid] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// selectKth partially orders v so that v[k] holds the k-th smallest value
// (Hoare selection with a median-of-three pivot) and returns it.
func selectKth(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		pivot := medianOfThree(v[lo], v[lo+(hi-lo)/2], v[hi])
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

func medianOfThree(a, b, c float64) float64 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	return max(a, b)
}

// kernelSums evaluates the MMD statistic for any split of the pooled
// sample from one precomputed kernel matrix. The statistic is symmetric in
// the two groups, so a split is described by the sorted indices of the
// smaller group alone ("g", size ng); that bounds the work per split by
// ng²/2 kernel lookups.
type kernelSums struct {
	k      []float64 // N×N kernel matrix, row-major
	n      int       // N = nx + ny
	nx, ny int
	ng     int       // size of the smaller group
	rowSum []float64 // Σ_j k[i][j]
	total  float64   // Σ_ij k[i][j]
}

func newKernelSums(k []float64, n, nx, ny int) *kernelSums {
	ks := &kernelSums{k: k, n: n, nx: nx, ny: ny, ng: min(nx, ny)}
	ks.rowSum = make([]float64, n)
	for i := range n {
		ks.rowSum[i] = floats.Sum(k[i*n : (i+1)*n])
		ks.total += ks.rowSum[i]
	}
	return ks
}

// observedGroup lists the smaller group in the original labelling, where
// x occupies the first nx pooled indices and y the rest.
func (ks *kernelSums) observedGroup() []int {
	start := 0
	if ks.nx > ks.ny {
		start = ks.nx
	}
	g := make([]int, ks.ng)
	for i := range g {
		g[i] = start + i
	}
	return g
}

// permutationBatch bounds how many splits exist at once, so memory stays
// small however many permutations are requested.
const permutationBatch = 64

// countPermutedAtLeast draws each batch of splits sequentially from rng
// before evaluating the batch in parallel, so the random stream is consumed
// in a fixed order and the p-value does not depend on scheduling.
func (ks *kernelSums) countPermutedAtLeast(observed float64, permutations int, rng *rand.Rand) int {
	groups := make([][]int, min(permutationBatch, permutations))
	for i := range groups {
		groups[i] = make([]int, ks.ng)
	}
	idx, picked := make([]int, ks.n), make([]bool, ks.n)
	count := 0
	for done := 0; done < permutations; {
		batch := groups[:min(len(groups), permutations-done)]
		for _, g := range batch {
			ks.randomGroup(g, idx, picked, rng)
		}
		count += ks.countAtLeast(observed, batch)
		done += len(batch)
	}
	return count
}

// randomGroup runs a partial Fisher–Yates over the first ng slots (as far
// as the split is concerned, a uniform shuffle of the pooled indices at a
// fraction of the random draws) and writes the chosen indices to g in
// increasing order.
func (ks *kernelSums) randomGroup(g, idx []int, picked []bool, rng *rand.Rand) {
	for i := range idx {
		idx[i] = i
		picked[i] = false
	}
	for i := range ks.ng {
		j := i + rng.IntN(ks.n-i)
		idx[i], idx[j] = idx[j], idx[i]
		picked[idx[i]] = true
	}
	g = g[:0]
	for i, p := range picked {
		if p {
			g = append(g, i)
		}
	}
}

// countAtLeast evaluates a batch of permuted statistics in parallel and
// counts those ≥ observed. Groups are sorted, so mmd2 sums in an order
// fixed by the set alone and a permutation reproducing the original split
// ties the observed value exactly and is counted.
func (ks *kernelSums) countAtLeast(observed float64, groups [][]int) int {
	hits := make([]bool, len(groups))
	parallelRows(len(groups), func(p int) {
		hits[p] = ks.mmd2(groups[p]) >= observed
	})
	count := 0
	for _, h := range hits {
		if h {
			count++
		}
	}
	return count
}

// mmd2 is the unbiased estimator
//
//	Σ_{i≠j∈X} k/(n(n-1)) + Σ_{i≠j∈Y} k/(m(m-1)) − 2 Σ_{i∈X,j∈Y} k/(nm)
//
// for the split whose smaller group is g. Only g's within-group pairs are
// visited; its row sums minus that give the cross sum, and the other
// group's sum is what remains of the total. The diagonal is all ones
// (k(a,a) = 1), which is how the i≠j sums are formed.
func (ks *kernelSums) mmd2(g []int) float64 {
	within := 2*ks.upperSum(g) + float64(len(g))
	var rows float64
	for _, i := range g {
		rows += ks.rowSum[i]
	}
	cross := rows - within
	other := ks.total - within - 2*cross
	ng, no := float64(len(g)), float64(ks.n-len(g))
	return (within-ng)/(ng*(ng-1)) + (other-no)/(no*(no-1)) - 2*cross/(ng*no)
}

// upperSum is Σ_{a<b} k[g_a][g_b]. The four accumulators break the
// floating-point add dependency chain, which is what bounds this loop.
func (ks *kernelSums) upperSum(g []int) float64 {
	var s0, s1, s2, s3 float64
	for a, i := range g {
		row := ks.k[i*ks.n : (i+1)*ks.n]
		rest := g[a+1:]
		b := 0
		for ; b+4 <= len(rest); b += 4 {
			s0 += row[rest[b]]
			s1 += row[rest[b+1]]
			s2 += row[rest[b+2]]
			s3 += row[rest[b+3]]
		}
		for ; b < len(rest); b++ {
			s0 += row[rest[b]]
		}
	}
	return (s0 + s1) + (s2 + s3)
}
