package stats

import (
	"math"
	"testing"
)

func TestDot4MatchesNaive(t *testing.T) { testDot4MatchesNaive(t) }

func testDot4MatchesNaive(t *testing.T) {
	rng := seeded(7)
	vec := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	for n := range 70 {
		x := vec(n)
		m := [4][]float64{vec(n + 3), vec(n), vec(n + 1), vec(n)}
		s0, s1, s2, s3 := dot4(x, m[0], m[1], m[2], m[3])
		for k, got := range [4]float64{s0, s1, s2, s3} {
			var want float64
			for i := range x {
				want += x[i] * m[k][i]
			}
			if math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
				t.Errorf("n=%d slot %d: dot4 = %.17g, naive %.17g", n, k, got, want)
			}
		}
	}
}

// The kernel matrix relies on ‖a‖²+‖b‖²−2a·b being exactly 0 for identical
// rows, whichever slot of dot4 computed each term.
func TestDot4OfIdenticalRowsIsExact(t *testing.T) {
	rng := seeded(8)
	a, other := make([]float64, 385), make([]float64, 385)
	for i := range a {
		a[i], other[i] = rng.NormFloat64(), rng.NormFloat64()
	}
	b := append([]float64(nil), a...)
	norm, _, _, _ := dot4(a, a, a, a, a)
	for k := range 4 {
		m := [4][]float64{other, other, other, other}
		m[k] = b
		s0, s1, s2, s3 := dot4(a, m[0], m[1], m[2], m[3])
		if d := 2*norm - 2*[4]float64{s0, s1, s2, s3}[k]; d != 0 {
			t.Errorf("slot %d: ‖a‖²+‖b‖²−2a·b = %g for identical rows, want exactly 0", k, d)
		}
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
