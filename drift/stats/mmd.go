package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/floats"
)

// MMDMaxPooled caps n+m for MMDTest. The pooled kernel matrix is held in
// memory as float64, so peak memory is about 8·(n+m)² bytes: ~540 MB at
// the cap. Callers with more data should subsample rather than have the
// process die.
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

// rbfKernelMatrix returns the kernel matrix's diagonal and upper triangle in
// an N×N row-major array (the lower half is left 0: the matrix is symmetric
// and nothing reads it) and the σ² used. Rows are kept at full width, not
// packed, so that a row and the permutation masks line up by column.
func rbfKernelMatrix(z [][]float64) ([]float64, float64) {
	n := len(z)
	k := squaredDistances(z)
	sigma2 := medianHeuristic(k, n)
	scale := -1 / (2 * sigma2)
	parallelRows(n, func(i int) {
		k[i*n+i] = 1
		for j := i + 1; j < n; j++ {
			k[i*n+j] = math.Exp(k[i*n+j] * scale)
		}
	})
	return k, sigma2
}

// squaredDistances fills the upper triangle of an N×N matrix with squared
// distances (the rest stays 0).
// It uses ‖a‖²+‖b‖²−2a·b so the work is dot products, four at a time; the
// cancellation this invites is far below anything that moves a kernel
// value. Identical rows still give exactly 0 because every dot product,
// norms included, runs the same instruction sequence (dot4's first slot).
func squaredDistances(z [][]float64) []float64 {
	n := len(z)
	norms := make([]float64, n)
	for i, v := range z {
		norms[i], _, _, _ = dot4(v, v, v, v, v)
	}
	d := make([]float64, n*n)
	// Tiles of rows keep both operands in cache: a whole-row sweep would
	// stream every vector from memory once per row.
	const tile = 32
	parallelRows((n+tile-1)/tile, func(bi int) {
		i0, i1 := bi*tile, min((bi+1)*tile, n)
		for j0 := i0; j0 < n; j0 += tile {
			j1 := min(j0+tile, n)
			for i := i0; i < i1; i++ {
				distanceRow(z, norms, d[i*n:(i+1)*n], i, max(j0, i+1), j1)
			}
		}
	})
	return d
}

// distanceRow sets out[j] = ‖z_i − z_j‖² for j in [from, to), four columns
// per pass over z_i (a short last pass repeats its final column).
func distanceRow(z [][]float64, norms, out []float64, i, from, to int) {
	for j := from; j < to; j += 4 {
		var c [4]int
		for k := range c {
			c[k] = min(j+k, to-1)
		}
		s0, s1, s2, s3 := dot4(z[i], z[c[0]], z[c[1]], z[c[2]], z[c[3]])
		for k, s := range [4]float64{s0, s1, s2, s3} {
			out[c[k]] = max(norms[i]+norms[c[k]]-2*s, 0)
		}
	}
}

// parallelRows spreads row work over the available CPUs. Rows are handed
// out round-robin because the triangular loops above make early rows the
// expensive ones.
func parallelRows(n int, row func(i int)) {
	parallel(n, func(w, workers int) {
		for i := w; i < n; i += workers {
			row(i)
		}
	})
}

// parallel runs work(w, workers) for w in [0, workers) on its own goroutine,
// with workers = min(GOMAXPROCS, n), and waits for all of them.
func parallel(n int, work func(w, workers int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w, workers)
		}()
	}
	wg.Wait()
}

// medianHeuristic picks σ² from the upper triangle of the squared distance
// matrix d. Using the pooled sample (not x alone) keeps the bandwidth
// invariant under relabelling, which is what makes the permutation test
// exact.
func medianHeuristic(d []float64, n int) float64 {
	if med := upperMedian(d, n); med > 0 {
		return med / 2
	}
	sum, count := 0.0, 0
	for i := range n {
		for _, v := range d[i*n+i+1 : (i+1)*n] {
			if v > 0 {
				sum += v
				count++
			}
		}
	}
	if count == 0 {
		return 1
	}
	return sum / float64(count) / 2
}

// upperMedian is the median of the strict upper triangle of the N×N matrix
// d. Copying millions of pairs to select among them took longer than the
// whole permutation loop, so the median is first bracketed between two
// quantiles of a sample of pairs; only the pairs inside the bracket are
// copied and selected from. A sample that misses the median (vanishingly
// rare, but possible) falls back to selecting among all pairs.
func upperMedian(d []float64, n int) float64 {
	total := n * (n - 1) / 2
	const sampleSize = 4096
	if total <= 16*sampleSize {
		return median(upperTriangle(d, n))
	}
	step := total/sampleSize + 1
	sample := make([]float64, 0, sampleSize+n)
	for i, k := 0, 0; i < n; i++ {
		for ; k < n-i-1; k += step {
			sample = append(sample, d[i*n+i+1+k])
		}
		k -= n - i - 1
	}
	slices.Sort(sample)
	lo, hi := sample[len(sample)*45/100], sample[len(sample)*55/100]
	below, inside := bracket(d, n, lo, hi)
	if m, ok := middleOf(inside, below, total); ok {
		return m
	}
	return median(upperTriangle(d, n))
}

// bracket counts the upper-triangle pairs below lo and returns those in
// [lo, hi], scanning rows in parallel.
func bracket(d []float64, n int, lo, hi float64) (int, []float64) {
	counts := make([]int, runtime.GOMAXPROCS(0))
	found := make([][]float64, len(counts))
	parallel(n, func(w, workers int) {
		for i := w; i < n; i += workers {
			for _, v := range d[i*n+i+1 : (i+1)*n] {
				if v < lo {
					counts[w]++
				} else if v <= hi {
					found[w] = append(found[w], v)
				}
			}
		}
	})
	below := 0
	for _, c := range counts {
		below += c
	}
	return below, slices.Concat(found...)
}

func upperTriangle(d []float64, n int) []float64 {
	upper := make([]float64, 0, n*(n-1)/2)
	for i := range n {
		upper = append(upper, d[i*n+i+1:(i+1)*n]...)
	}
	return upper
}

// median reorders v. Selection instead of a full sort matters here: the
// pooled sample of a few thousand points has millions of pairs.
func median(v []float64) float64 {
	m, _ := middleOf(v, 0, len(v))
	return m
}

// middleOf returns the median of a multiset of total values, given v
// holding exactly the values ranked [below, below+len(v)) in it; ok is
// false when the middle ranks are not in v. v is reordered.
func middleOf(v []float64, below, total int) (float64, bool) {
	hiRank := total/2 - below
	loRank := hiRank
	if total%2 == 0 {
		loRank--
	}
	if loRank < 0 || hiRank >= len(v) {
		return 0, false
	}
	hi := selectKth(v, hiRank)
	if loRank == hiRank {
		return hi, true
	}
	// After selection every element left of hiRank is ≤ v[hiRank], so the
	// lower middle value is simply the largest of them.
	lo := v[0]
	for _, x := range v[1:hiRank] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2, true
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
	k      []float64 // N×N kernel matrix, row-major, upper triangle only
	n      int       // N = nx + ny
	nx, ny int
	ng     int       // size of the smaller group
	rowSum []float64 // Σ_j k[i][j]
	total  float64   // Σ_ij k[i][j]
}

func newKernelSums(k []float64, n, nx, ny int) *kernelSums {
	ks := &kernelSums{k: k, n: n, nx: nx, ny: ny, ng: min(nx, ny)}
	// Row i's sum is its diagonal 1, its part of the upper triangle, and
	// column i of the upper triangle (the symmetric lower half).
	ks.rowSum = make([]float64, n)
	for i := range n {
		ks.rowSum[i]++
		ks.rowSum[i] += floats.Sum(k[i*n+i+1 : (i+1)*n])
		floats.Add(ks.rowSum[i+1:], k[i*n+i+1:(i+1)*n])
	}
	for _, v := range ks.rowSum {
		ks.total += v
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
const permutationBatch = 128

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
// counts those ≥ observed. Each worker takes an interleaved share of the
// groups and evaluates them together in one pass over the kernel rows.
func (ks *kernelSums) countAtLeast(observed float64, groups [][]int) int {
	stats := make([]float64, len(groups))
	parallel(len(groups), func(w, workers int) {
		var share [][]int
		var idx []int
		for p := w; p < len(groups); p += workers {
			share, idx = append(share, groups[p]), append(idx, p)
		}
		for j, v := range ks.mmd2Batch(share) {
			stats[idx[j]] = v
		}
	})
	count := 0
	for _, v := range stats {
		if v >= observed {
			count++
		}
	}
	return count
}

// mmd2 is the statistic for the single split whose smaller group is g.
func (ks *kernelSums) mmd2(g []int) float64 { return ks.mmd2Batch([][]int{g})[0] }

// mmd2Batch is the unbiased estimator
//
//	Σ_{i≠j∈X} k/(n(n-1)) + Σ_{i≠j∈Y} k/(m(m-1)) − 2 Σ_{i∈X,j∈Y} k/(nm)
//
// for each split whose smaller group is gs[p]. Only a group's within-group
// pairs are visited; its row sums minus that give the cross sum, and the
// other group's sum is what remains of the total. The diagonal is all ones
// (k(a,a) = 1), which is how the i≠j sums are formed.
func (ks *kernelSums) mmd2Batch(gs [][]int) []float64 {
	out := ks.upperSums(gs)
	for p, g := range gs {
		within := 2*out[p] + float64(len(g))
		var rows float64
		for _, i := range g {
			rows += ks.rowSum[i]
		}
		cross := rows - within
		other := ks.total - within - 2*cross
		ng, no := float64(len(g)), float64(ks.n-len(g))
		out[p] = (within-ng)/(ng*(ng-1)) + (other-no)/(no*(no-1)) - 2*cross/(ng*no)
	}
	return out
}

// upperSums returns Σ_{a<b} k[g_a][g_b] for every group in gs. Visiting
// one kernel row for all groups that contain it, instead of the whole
// matrix once per group, is what makes the permutation loop cache-bound
// rather than memory-bound: the matrix streams from RAM once per batch.
// Each group's sum is accumulated in an order fixed by the set alone, so a
// permutation reproducing the observed split ties it exactly.
func (ks *kernelSums) upperSums(gs [][]int) []float64 {
	out := make([]float64, len(gs))
	next := make([]int, len(gs)) // position in gs[p] of the next row to visit
	// A dense dot product with a 0/1 mask does more multiplications than
	// gathering the group's entries but runs 8 lanes wide; it wins once the
	// group holds more than about one pooled point in eight.
	var masks [][]float64
	if ks.ng*8 >= ks.n {
		masks = make([][]float64, len(gs))
		for p, g := range gs {
			masks[p] = make([]float64, ks.n)
			for _, i := range g {
				masks[p][i] = 1
			}
		}
	}
	in := make([]int, 0, len(gs)) // groups containing the current row
	for i := range ks.n {
		row := ks.k[i*ks.n : (i+1)*ks.n]
		in = in[:0]
		for p, g := range gs {
			if a := next[p]; a < len(g) && g[a] == i {
				in = append(in, p)
				next[p]++
			}
		}
		if masks == nil {
			for _, p := range in {
				out[p] += gatherSum(row, gs[p][next[p]:])
			}
			continue
		}
		maskedRowSums(row[i+1:], i+1, in, masks, out)
	}
	return out
}

// maskedRowSums adds row·mask_p to out[p] for each group p in in, four
// groups per pass over the row. A short last pass repeats a group in the
// spare slots and keeps only its own result.
func maskedRowSums(row []float64, from int, in []int, masks [][]float64, out []float64) {
	for len(in) > 0 {
		var q [4]int
		for k := range q {
			q[k] = in[min(k, len(in)-1)]
		}
		s0, s1, s2, s3 := dot4(row, masks[q[0]][from:], masks[q[1]][from:], masks[q[2]][from:], masks[q[3]][from:])
		sums := [4]float64{s0, s1, s2, s3}
		for k := range min(4, len(in)) {
			out[q[k]] += sums[k]
		}
		in = in[min(4, len(in)):]
	}
}

// gatherSum is Σ row[j] for j in idx. The four accumulators break the
// floating-point add dependency chain, which is what bounds this loop.
func gatherSum(row []float64, idx []int) float64 {
	var s0, s1, s2, s3 float64
	b := 0
	for ; b+4 <= len(idx); b += 4 {
		s0 += row[idx[b]]
		s1 += row[idx[b+1]]
		s2 += row[idx[b+2]]
		s3 += row[idx[b+3]]
	}
	for ; b < len(idx); b++ {
		s0 += row[idx[b]]
	}
	return (s0 + s1) + (s2 + s3)
}
