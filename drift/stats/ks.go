package stats

import (
	"errors"
	"math"
	"slices"
)

// KSExactMaxN is the largest sample size for which KSTwoSample computes the
// exact p-value. scipy 1.10's ks_2samp(method="auto") uses the same rule,
// max(n, m) ≤ 10000 (older scipy releases used n·m ≤ 10000 instead).
const KSExactMaxN = 10000

// KSResult is the outcome of a two-sample Kolmogorov–Smirnov test.
type KSResult struct {
	// D is the largest absolute gap between the two empirical CDFs.
	D float64
	// PValue is the two-sided p-value.
	PValue float64
	// Exact reports whether PValue came from the exact null distribution
	// (true) or from the large-sample approximation (false).
	Exact bool
	// NX and NY are the sample sizes.
	NX, NY int
}

// KSTwoSample is the two-sided two-sample Kolmogorov–Smirnov test,
// reproducing scipy.stats.ks_2samp(x, y, method="auto") of scipy 1.10:
//
//   - when max(n, m) ≤ KSExactMaxN the p-value is exact: P(D ≥ d) under
//     the permutation null, counted over lattice paths (Hodges 1958) with
//     the numerically stable recursion of Viehmann (2021), or the closed
//     form alternating sum when n = m;
//   - otherwise it is scipy's "asymp" value: the one-sample Kolmogorov
//     distribution survival function P(D_k ≥ d) with k = round(nm/(n+m))
//     (scipy.stats.kstwo.sf), which is more accurate than the limiting
//     kolmogorov(√k·d) for moderate k.
//
// Ties, within and across samples, are handled as in scipy: both
// empirical CDFs are evaluated after every distinct value. The exact
// p-value is the exact null distribution for continuous data; with ties it
// is conservative. Empty samples and NaN values are errors.
//
// The exact path count visits only the lattice cells inside the band the
// observed D allows, so it is cheap for the small D of undrifted data; its
// worst case, nearly disjoint samples at the 10000×10000 limit, is about
// 10⁸ cell updates (under a second).
func KSTwoSample(x, y []float64) (KSResult, error) {
	if len(x) == 0 || len(y) == 0 {
		return KSResult{}, errors.New("stats: KS needs two non-empty samples")
	}
	if slices.ContainsFunc(x, math.IsNaN) || slices.ContainsFunc(y, math.IsNaN) {
		return KSResult{}, errors.New("stats: KS sample contains NaN")
	}
	n1, n2 := len(x), len(y)
	g := gcd(n1, n2)
	lcm := n1 / g * n2
	h := ksGap(x, y, n1/g, n2/g)
	res := KSResult{D: float64(h) / float64(lcm), NX: n1, NY: n2}
	if max(n1, n2) <= KSExactMaxN {
		res.Exact = true
		res.PValue = ksExactSF(n1, n2, g, h)
	} else {
		en := float64(n1) * float64(n2) / float64(n1+n2)
		res.PValue = kolmogorovSF(int(math.RoundToEven(en)), res.D)
	}
	res.PValue = min(max(res.PValue, 0), 1)
	return res, nil
}

// ksGap returns D in units of 1/lcm(n1, n2) as an exact integer: at any
// point i/n1 − j/n2 = (i·b − j·a)/lcm with a = n1/g, b = n2/g. Keeping it
// integral avoids the rounding scipy has to undo before the exact path
// count, which needs the gap as a lattice distance.
func ksGap(x, y []float64, a, b int) int {
	xs, ys := slices.Clone(x), slices.Clone(y)
	slices.Sort(xs)
	slices.Sort(ys)
	i, j, best := 0, 0, 0
	for i < len(xs) || j < len(ys) {
		v := nextValue(xs, ys, i, j)
		for i < len(xs) && xs[i] == v {
			i++
		}
		for j < len(ys) && ys[j] == v {
			j++
		}
		best = max(best, abs(i*b-j*a))
	}
	return best
}

func nextValue(xs, ys []float64, i, j int) float64 {
	switch {
	case i == len(xs):
		return ys[j]
	case j == len(ys):
		return xs[i]
	}
	return min(xs[i], ys[j])
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ksExactSF is P(D ≥ h/lcm) for sample sizes n1, n2 with gcd g.
func ksExactSF(n1, n2, g, h int) float64 {
	if h == 0 {
		return 1
	}
	if n1 == n2 {
		return ksEqualSizesSF(n1, h)
	}
	return ksLatticeSF(n1, n2, g, h)
}

// ksEqualSizesSF uses the reflection-principle closed form for n = m,
//
//	P(D ≥ h/n) = 2 Σ_{k≥1} (−1)^(k−1) C(2n, n−kh) / C(2n, n),
//
// evaluated as nested products 2·A₁(1 − A₂(1 − A₃(…))) where A_k is the
// ratio of consecutive terms. Summing the alternating series directly
// would cancel catastrophically when the p-value is near 1.
func ksEqualSizesSF(n, h int) float64 {
	p := 0.0
	for k := n / h; k >= 1; k-- {
		a := 1.0
		for j := (k - 1) * h; j < k*h; j++ {
			a *= float64(n-j) / float64(n+j+1)
		}
		p = a * (1 - p)
	}
	return 2 * p
}

// ksLatticeSF counts monotone lattice paths from (0,0) to (n1,n2): the
// p-value is the fraction of them that touch the band edge
// |x·b − y·a| ≥ h (a = n1/g, b = n2/g), i.e. whose ECDF gap reaches the
// observed D somewhere. Rather than counting paths (which overflows) it
// carries q(x,y), the fraction of paths to (x,y) that have already left
// the band, which obeys
//
//	q(x,y) = (x·q(x−1,y) + y·q(x,y−1)) / (x+y)   inside the band,
//	q(x,y) = 1                                   outside it,
//
// and stays in [0,1], so there is no overflow and no cancellation
// (Viehmann 2021). Only the band's cells are visited, one column at a time.
func ksLatticeSF(n1, n2, g, h int) float64 {
	a, b := n1/g, n2/g
	q := make([]float64, n2+1)
	for i := range q {
		q[i] = 1
	}
	for x := 0; x <= n1; x++ {
		lo, hi := bandRows(x, a, b, h, n2)
		if lo > hi {
			return 1
		}
		prev := 1.0 // q(x, lo−1): outside the band, or unused when lo = 0
		for y := lo; y <= hi; y++ {
			if x+y == 0 {
				q[y] = 0
			} else {
				q[y] = (float64(x)*q[y] + float64(y)*prev) / float64(x+y)
			}
			prev = q[y]
		}
	}
	return q[n2]
}

// bandRows returns the y range of column x that lies strictly inside the
// band |x·b − y·a| < h. Both ends only move up as x grows, which is what
// lets ksLatticeSF reuse one column array.
func bandRows(x, a, b, h, n2 int) (lo, hi int) {
	if num := x*b - h; num >= 0 {
		lo = num/a + 1
	}
	hi = min((x*b+h-1)/a, n2)
	return lo, hi
}
