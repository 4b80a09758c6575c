package stats

import (
	"math"
	"slices"
)

// BenjaminiHochberg returns Benjamini–Hochberg adjusted p-values (q-values)
// in the order of p, the same numbers as R's p.adjust(p, "BH") and
// statsmodels' multipletests(p, method="fdr_bh"). Drift checks test many
// features at once; controlling the false discovery rate keeps alert volume
// sane without the power loss of Bonferroni.
//
// NaN entries (tests that could not be run) stay NaN and are left out of
// the count of tests, as R does. The input is not modified.
func BenjaminiHochberg(p []float64) []float64 {
	out, order := nanAwareCopy(p)
	m := float64(len(order))
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	// Walk from the largest p down, carrying the running minimum so the
	// adjusted values stay monotone in the raw ones.
	running := 1.0
	for rank := len(order); rank >= 1; rank-- {
		i := order[rank-1]
		running = min(running, p[i]*m/float64(rank))
		out[i] = running
	}
	return out
}

// Bonferroni returns min(1, m·p) for each p-value, m being the number of
// non-NaN entries. It controls the family-wise error rate and suits the
// case where even one false alert is costly. NaN entries stay NaN; the
// input is not modified.
func Bonferroni(p []float64) []float64 {
	out, order := nanAwareCopy(p)
	m := float64(len(order))
	for _, i := range order {
		out[i] = min(1, p[i]*m)
	}
	return out
}

// nanAwareCopy returns an output slice pre-filled with NaN and the indices
// of the entries that are real p-values.
func nanAwareCopy(p []float64) ([]float64, []int) {
	out := make([]float64, len(p))
	order := make([]int, 0, len(p))
	for i, v := range p {
		out[i] = math.NaN()
		if !math.IsNaN(v) {
			order = append(order, i)
		}
	}
	return out, order
}
