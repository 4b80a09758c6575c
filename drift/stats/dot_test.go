package stats

import (
	"math"
	"testing"
)

func TestDotMatchesNaive(t *testing.T) {
	rng := seeded(7)
	for n := range 70 {
		x, y := make([]float64, n), make([]float64, n+3)
		for i := range x {
			x[i], y[i] = rng.NormFloat64(), rng.NormFloat64()
		}
		var want float64
		for i := range x {
			want += x[i] * y[i]
		}
		if got := dot(x, y); math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
			t.Errorf("n=%d: dot = %.17g, naive %.17g", n, got, want)
		}
	}
}

func TestDotOfIdenticalRowsIsExact(t *testing.T) {
	rng := seeded(8)
	a := make([]float64, 384)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	b := append([]float64(nil), a...)
	if d := dot(a, a) + dot(b, b) - 2*dot(a, b); d != 0 {
		t.Errorf("‖a‖²+‖b‖²−2a·b = %g for identical rows, want exactly 0", d)
	}
}

func TestUpperMedianMatchesFullSelection(t *testing.T) {
	rng := seeded(9)
	cases := map[string]func(i, j int) float64{
		"continuous": func(int, int) float64 { return rng.ExpFloat64() },
		"few levels": func(int, int) float64 { return float64(rng.IntN(5)) },
		"mostly 0":   func(int, int) float64 { return float64(rng.IntN(3) / 2) },
		// Ordered by position, so a strided sample sees a skewed picture.
		"sorted rows": func(i, j int) float64 { return float64(i*1000 + j) },
	}
	for name, value := range cases {
		for _, n := range []int{400, 401} {
			d := make([]float64, n*n)
			for i := range n {
				for j := i + 1; j < n; j++ {
					d[i*n+j] = value(i, j)
				}
			}
			want := median(upperTriangle(d, n))
			if got := upperMedian(d, n); got != want {
				t.Errorf("%s n=%d: upperMedian = %v, full selection %v", name, n, got, want)
			}
		}
	}
}

func TestMiddleOfRefusesMissedBracket(t *testing.T) {
	// v holds ranks 10..12 of 30 values: the middle ranks 14 and 15 are not there.
	if _, ok := middleOf([]float64{1, 2, 3}, 10, 30); ok {
		t.Error("middleOf accepted a bracket that misses the median")
	}
	if m, ok := middleOf([]float64{5, 3, 4, 6}, 13, 30); !ok || m != 4.5 {
		t.Errorf("middleOf = %v, %v; want 4.5 (ranks 14 and 15 are 4 and 5)", m, ok)
	}
}
