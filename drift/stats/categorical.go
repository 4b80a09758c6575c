package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// ChiSquareResult is the outcome of a test of homogeneity on the 2×K table
// formed by a reference and a current category histogram.
type ChiSquareResult struct {
	// Statistic is Pearson's X² (ChiSquare) or the likelihood-ratio G
	// (GTest); both are asymptotically χ²(DOF) under homogeneity.
	Statistic float64
	// PValue is the χ² survival function at Statistic.
	PValue float64
	// DOF is K-1, where K counts the categories seen on either side.
	DOF int
}

// contingency is the validated 2×K table. Categories are sorted so that
// sums run in a fixed order and results are bit-for-bit reproducible
// despite Go's randomised map iteration.
type contingency struct {
	names    []string
	ref, cur []float64
	refTotal float64
	curTotal float64
}

// newContingency takes the union of categories and drops those that are
// zero on both sides: they carry no information but would still count
// towards the degrees of freedom. Counts may be fractional (for weighted
// data) but must be finite and non-negative. It fails when either side sums
// to zero or fewer than two categories remain, since no comparison is
// possible then; one side lacking a category the other has is fine.
func newContingency(ref, cur map[string]float64) (contingency, error) {
	var t contingency
	seen := make(map[string]bool, len(ref)+len(cur))
	for _, side := range []map[string]float64{ref, cur} {
		for name, v := range side {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return t, fmt.Errorf("stats: category %q has invalid count %v", name, v)
			}
			if v > 0 && !seen[name] {
				seen[name] = true
				t.names = append(t.names, name)
			}
		}
	}
	slices.Sort(t.names)
	for _, name := range t.names {
		t.ref = append(t.ref, ref[name])
		t.cur = append(t.cur, cur[name])
		t.refTotal += ref[name]
		t.curTotal += cur[name]
	}
	switch {
	case t.refTotal == 0 || t.curTotal == 0:
		return t, errors.New("stats: a categorical sample has zero total")
	case len(t.names) < 2:
		return t, fmt.Errorf("stats: need at least 2 categories, got %d", len(t.names))
	}
	return t, nil
}

// expected returns the counts under homogeneity: each category's pooled
// share applied to each side's total.
func (t contingency) expected(i int) (ref, cur float64) {
	total := t.refTotal + t.curTotal
	col := t.ref[i] + t.cur[i]
	return t.refTotal * col / total, t.curTotal * col / total
}

// ChiSquare is Pearson's chi-square test of homogeneity, without Yates'
// continuity correction, matching scipy.stats.chi2_contingency(table,
// correction=False) on the 2×K table [ref; cur].
func ChiSquare(ref, cur map[string]float64) (ChiSquareResult, error) {
	t, err := newContingency(ref, cur)
	if err != nil {
		return ChiSquareResult{}, err
	}
	return t.result(t.pearson()), nil
}

// GTest is the likelihood-ratio (G) test of homogeneity, matching
// scipy.stats.chi2_contingency(table, correction=False,
// lambda_="log-likelihood"). It is preferred over ChiSquare when some
// expected counts are small, where Pearson's X² over-reacts.
func GTest(ref, cur map[string]float64) (ChiSquareResult, error) {
	t, err := newContingency(ref, cur)
	if err != nil {
		return ChiSquareResult{}, err
	}
	return t.result(t.gStatistic()), nil
}

func (t contingency) result(stat float64) ChiSquareResult {
	dof := len(t.names) - 1
	return ChiSquareResult{
		Statistic: stat,
		PValue:    distuv.ChiSquared{K: float64(dof)}.Survival(stat),
		DOF:       dof,
	}
}

func (t contingency) pearson() float64 {
	var stat float64
	for i := range t.names {
		er, ec := t.expected(i)
		stat += (t.ref[i]-er)*(t.ref[i]-er)/er + (t.cur[i]-ec)*(t.cur[i]-ec)/ec
	}
	return stat
}

func (t contingency) gStatistic() float64 {
	var stat float64
	for i := range t.names {
		er, ec := t.expected(i)
		stat += xLogXOverY(t.ref[i], er) + xLogXOverY(t.cur[i], ec)
	}
	return 2 * stat
}

// xLogXOverY follows the 0·log 0 = 0 convention, so an empty cell adds
// nothing instead of producing NaN.
func xLogXOverY(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(x/y)
}

// CramersV is the effect size that goes with ChiSquare: sqrt(X²/(N·min(r-1,
// c-1))), which for a 2×K table is sqrt(X²/N). Unlike the p-value it does
// not grow with sample size, so it says whether a significant shift is
// also a large one. It lies in [0, 1].
func CramersV(ref, cur map[string]float64) (float64, error) {
	t, err := newContingency(ref, cur)
	if err != nil {
		return 0, err
	}
	return math.Sqrt(t.pearson() / (t.refTotal + t.curTotal)), nil
}

// JensenShannonDistance is the square root of the base-2 Jensen–Shannon
// divergence between the normalised histograms p and q, matching
// scipy.spatial.distance.jensenshannon(p, q, base=2). It is symmetric,
// bounded in [0, 1] and a true metric, which makes it easy to threshold.
// Inputs are validated as for ChiSquare.
func JensenShannonDistance(p, q map[string]float64) (float64, error) {
	t, err := newContingency(p, q)
	if err != nil {
		return 0, err
	}
	var div float64
	for i := range t.names {
		pi, qi := t.ref[i]/t.refTotal, t.cur[i]/t.curTotal
		m := (pi + qi) / 2
		div += xLogXOverY(pi, m) + xLogXOverY(qi, m)
	}
	// Rounding can leave a hair below 0 for identical inputs.
	return math.Sqrt(max(div/(2*math.Ln2), 0)), nil
}

// PSI is the population stability index Σ (c_i − r_i)·ln(c_i / r_i) over
// the normalised histograms r (ref) and c (cur), the score credit-risk and
// ML-monitoring teams conventionally threshold at 0.1 and 0.25.
//
// A category empty on one side would make the log infinite, so each
// proportion is floored at eps before use (without renormalising, so that
// categories present on both sides keep their exact contribution). eps = 0
// is allowed and then yields +Inf for such categories. eps must not be
// negative. Inputs are validated as for ChiSquare.
func PSI(ref, cur map[string]float64, eps float64) (float64, error) {
	if !(eps >= 0) {
		return 0, fmt.Errorf("stats: PSI eps must be >= 0, got %v", eps)
	}
	t, err := newContingency(ref, cur)
	if err != nil {
		return 0, err
	}
	var psi float64
	for i := range t.names {
		r := max(t.ref[i]/t.refTotal, eps)
		c := max(t.cur[i]/t.curTotal, eps)
		psi += (c - r) * math.Log(c/r)
	}
	return psi, nil
}
