package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a closed interval [Lo, Hi].
type Interval struct {
	Lo, Hi float64
}

// Contains reports whether v lies within the interval.
func (i Interval) Contains(v float64) bool { return v >= i.Lo && v <= i.Hi }

// ClopperPearson is the exact (conservative) two-sided binomial confidence
// interval for a success probability after k successes in n trials, at
// confidence 1−alpha: the same numbers as
// statsmodels.stats.proportion.proportion_confint(k, n, alpha, "beta").
// Calibration reports use it because it never undercovers, so "the nominal
// level is inside the interval" is a fair test of a false-alarm rate.
func ClopperPearson(k, n int, alpha float64) (Interval, error) {
	if n <= 0 || k < 0 || k > n {
		return Interval{}, fmt.Errorf("stats: binomial interval needs 0 ≤ k ≤ n and n > 0, got k=%d n=%d", k, n)
	}
	if !(alpha > 0 && alpha < 1) {
		return Interval{}, fmt.Errorf("stats: alpha %v must be within (0,1)", alpha)
	}
	iv := Interval{Lo: 0, Hi: 1}
	if k > 0 {
		iv.Lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(alpha / 2)
	}
	if k < n {
		iv.Hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - alpha/2)
	}
	return iv, nil
}

// Wilson is the Wilson score interval for k successes in n trials at
// confidence 1−alpha. It is shorter than ClopperPearson and centred better
// for small k, at the price of slight undercoverage for some n.
func Wilson(k, n int, alpha float64) (Interval, error) {
	if n <= 0 || k < 0 || k > n {
		return Interval{}, fmt.Errorf("stats: binomial interval needs 0 ≤ k ≤ n and n > 0, got k=%d n=%d", k, n)
	}
	if !(alpha > 0 && alpha < 1) {
		return Interval{}, fmt.Errorf("stats: alpha %v must be within (0,1)", alpha)
	}
	z := distuv.UnitNormal.Quantile(1 - alpha/2)
	nn, p := float64(n), float64(k)/float64(n)
	den := 1 + z*z/nn
	centre := (p + z*z/(2*nn)) / den
	half := z / den * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return Interval{Lo: max(centre-half, 0), Hi: min(centre+half, 1)}, nil
}
