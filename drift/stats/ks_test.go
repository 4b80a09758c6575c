package stats

import (
	"math"
	"testing"
)

// modularSample mirrors modular_sample in testdata/reference.py: integers
// spread without ties (mul is coprime to the prime mod), so both languages
// see exactly the same data.
func modularSample(n, mul, mod, shift int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64((i*mul)%mod + shift)
	}
	return out
}

// cyclicSample mirrors cyclic_sample in testdata/reference.py: heavy ties.
func cyclicSample(n, period, shift int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i%period + shift)
	}
	return out
}

func closeRel(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// Reference values: scipy.stats.ks_2samp(x, y, method="auto"), scipy 1.10.1,
// printed by testdata/reference.py (KS_CASES).
func TestKSTwoSampleMatchesScipy(t *testing.T) {
	cases := []struct {
		name  string
		x, y  []float64
		d, p  float64
		exact bool
	}{
		{"exact_unequal_small", modularSample(37, 17, 101, 0), modularSample(53, 29, 101, 15), 0.25293217746047936, 0.09857664713162774, true},
		{"exact_equal_200", modularSample(200, 7919, 100003, 0), modularSample(200, 104729, 100003, 12000), 0.125, 0.0878382826713132, true},
		{"exact_equal_far", modularSample(300, 7919, 100003, 0), modularSample(300, 104729, 100003, 50000), 0.51, 6.776068349789028e-36, true},
		{"exact_unequal_3000_7000", modularSample(3000, 7919, 1000003, 0), modularSample(7000, 104729, 1000003, 30000), 0.03833333333333333, 0.0040723399086964145, true},
		{"exact_unequal_null", modularSample(450, 7919, 1000003, 0), modularSample(700, 104729, 1000003, 0), 0.07253968253968254, 0.105872973314885, true},
		{"exact_ties", cyclicSample(60, 7, 0), cyclicSample(45, 5, 1), 0.15, 0.5658078840059115, true},
		{"exact_disjoint", modularSample(40, 3, 41, 0), modularSample(30, 7, 31, 100), 1.0, 3.6135170070159586e-20, true},
		{"asymp_12000_15000", modularSample(12000, 7919, 1000003, 0), modularSample(15000, 104729, 1000003, 12000), 0.012616666666666665, 0.2370576336447061, false},
		{"asymp_20000_20000_small_d", modularSample(20000, 7919, 1000003, 0), modularSample(20000, 104729, 1000003, 5000), 0.006500000000000006, 0.7894417405334433, false},
		{"asymp_20000_20000_large_d", modularSample(20000, 7919, 1000003, 0), modularSample(20000, 104729, 1000003, 20000), 0.02150000000000002, 0.00019029548398995865, false},
		{"asymp_10001_3", modularSample(10001, 7919, 1000003, 0), modularSample(3, 104729, 1000003, 600000), 0.6009399060093991, 0.14267619662924932, false},
		{"asymp_10500_200", modularSample(10500, 7919, 1000003, 0), modularSample(200, 104729, 1000003, 90000), 0.09276190476190477, 0.06427659885360959, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := KSTwoSample(c.x, c.y)
			if err != nil {
				t.Fatal(err)
			}
			// scipy's D is a difference of two float ECDF values; ours is an
			// exact ratio, so allow a few ulps.
			if !closeRel(got.D, c.d, 1e-13) {
				t.Errorf("D = %.17g, want %.17g", got.D, c.d)
			}
			if !closeRel(got.PValue, c.p, 1e-12) {
				t.Errorf("p = %.17g, want %.17g (rel err %.2g)", got.PValue, c.p, math.Abs(got.PValue-c.p)/c.p)
			}
			if got.Exact != c.exact || got.NX != len(c.x) || got.NY != len(c.y) {
				t.Errorf("got Exact=%v NX=%d NY=%d", got.Exact, got.NX, got.NY)
			}
		})
	}
}

// Reference values: scipy.stats.kstwo.sf(x, n), scipy 1.10.1, printed by
// testdata/reference.py (KSTWO_N × KSTWO_X). The grid reaches every branch
// of kolmogorovSF.
func TestKolmogorovSFMatchesScipy(t *testing.T) {
	cases := []struct {
		n     int
		x, sf float64
	}{
		{1, 0.0004, 1.0},
		{1, 0.001, 1.0},
		{1, 0.003, 1.0},
		{1, 0.01, 1.0},
		{1, 0.03, 1.0},
		{1, 0.05, 1.0},
		{1, 0.1, 1.0},
		{1, 0.2, 1.0},
		{1, 0.3, 1.0},
		{1, 0.5, 1.0},
		{1, 0.7, 0.6000000000000001},
		{1, 0.9, 0.19999999999999996},
		{1, 0.99, 0.020000000000000018},
		{2, 0.0004, 1.0},
		{2, 0.001, 1.0},
		{2, 0.003, 1.0},
		{2, 0.01, 1.0},
		{2, 0.03, 1.0},
		{2, 0.05, 1.0},
		{2, 0.1, 1.0},
		{2, 0.2, 1.0},
		{2, 0.3, 0.98},
		{2, 0.5, 0.5},
		{2, 0.7, 0.18000000000000005},
		{2, 0.9, 0.01999999999999999},
		{2, 0.99, 0.00020000000000000036},
		{3, 0.0004, 1.0},
		{3, 0.001, 1.0},
		{3, 0.003, 1.0},
		{3, 0.01, 1.0},
		{3, 0.03, 1.0},
		{3, 0.05, 1.0},
		{3, 0.1, 1.0},
		{3, 0.2, 0.9982222222222222},
		{3, 0.3, 0.8862222222222222},
		{3, 0.5, 0.3333333333333333},
		{3, 0.7, 0.05400000000000003},
		{3, 0.9, 0.0019999999999999987},
		{3, 0.99, 2.0000000000000054e-06},
		{5, 0.0004, 1.0},
		{5, 0.001, 1.0},
		{5, 0.003, 1.0},
		{5, 0.01, 1.0},
		{5, 0.03, 1.0},
		{5, 0.05, 1.0},
		{5, 0.1, 1.0},
		{5, 0.2, 0.9616},
		{5, 0.3, 0.664},
		{5, 0.5, 0.112},
		{5, 0.7, 0.005560000000000004},
		{5, 0.9, 1.9999999999999978e-05},
		{5, 0.99, 2.0000000000000089e-10},
		{10, 0.0004, 1.0},
		{10, 0.001, 1.0},
		{10, 0.003, 1.0},
		{10, 0.01, 1.0},
		{10, 0.03, 1.0},
		{10, 0.05, 1.0},
		{10, 0.1, 0.99963712},
		{10, 0.2, 0.7487190399999999},
		{10, 0.3, 0.27053557479999946},
		{10, 0.5, 0.00777741},
		{10, 0.7, 1.9544800000000034e-05},
		{10, 0.9, 1.9999999999999957e-10},
		{10, 0.99, 2.0000000000000176e-20},
		{50, 0.0004, 1.0},
		{50, 0.001, 1.0},
		{50, 0.003, 1.0},
		{50, 0.01, 1.0},
		{50, 0.03, 0.9999999991521389},
		{50, 0.05, 0.9990238098461883},
		{50, 0.1, 0.6623112704658186},
		{50, 0.2, 0.03143877776953241},
		{50, 0.3, 0.00017353260202718738},
		{50, 0.5, 4.392853499119748e-12},
		{50, 0.7, 4.405451055671056e-25},
		{50, 0.9, 2.0160611902288146e-50},
		{50, 0.99, 2.0000000000000889e-100},
		{140, 0.0004, 1.0},
		{140, 0.001, 1.0},
		{140, 0.003, 1.0},
		{140, 0.01, 1.0},
		{140, 0.03, 0.9992547123063266},
		{140, 0.05, 0.8576480297656114},
		{140, 0.1, 0.11353657290090946},
		{140, 0.2, 2.1981563302200222e-05},
		{140, 0.3, 1.1370251710737309e-11},
		{140, 0.5, 6.869300438276986e-33},
		{140, 0.7, 2.7611948816463573e-69},
		{140, 0.9, 2.0855973600936603e-140},
		{140, 0.99, 2.0000000000002487e-280},
		{141, 0.0004, 1.0},
		{141, 0.001, 1.0},
		{141, 0.003, 1.0},
		{141, 0.01, 1.0},
		{141, 0.03, 0.9992107601012719},
		{141, 0.05, 0.8548456930096628},
		{141, 0.1, 0.11128445516467944},
		{141, 0.2, 2.0276784223976912e-05},
		{141, 0.3, 9.46134771413843e-12},
		{141, 0.5, 4.034017661079683e-33},
		{141, 0.7, 8.911602304669148e-70},
		{141, 0.9, 2.0864169369551964e-141},
		{141, 0.99, 2.0000000000002504e-282},
		{500, 0.0004, 1.0},
		{500, 0.001, 1.0},
		{500, 0.003, 1.0},
		{500, 0.01, 0.9999999991073389},
		{500, 0.03, 0.7473166700457021},
		{500, 0.05, 0.15866260223815365},
		{500, 0.1, 8.342293067263533e-05},
		{500, 0.2, 5.256835361945869e-18},
		{500, 0.3, 2.0976835679070943e-40},
		{500, 0.5, 4.1132799581816557e-116},
		{500, 0.7, 4.2709883022831154e-246},
		{500, 0.9, 0.0},
		{500, 0.99, 0.0},
		{1000, 0.0004, 1.0},
		{1000, 0.001, 1.0},
		{1000, 0.003, 1.0},
		{1000, 0.01, 0.9999496745370611},
		{1000, 0.03, 0.3226902143914636},
		{1000, 0.05, 0.013012074781090332},
		{1000, 0.1, 3.703687096817711e-09},
		{1000, 0.2, 1.5528629204250538e-35},
		{1000, 0.3, 2.590715705736845e-80},
		{1000, 0.5, 1.064517291557782e-231},
		{1000, 0.7, 0.0},
		{1000, 0.9, 0.0},
		{1000, 0.99, 0.0},
		{10000, 0.0004, 1.0},
		{10000, 0.001, 1.0},
		{10000, 0.003, 0.9999892575789189},
		{10000, 0.01, 0.2682191277029192},
		{10000, 0.03, 2.9761211950626197e-08},
		{10000, 0.05, 3.632631514370292e-22},
		{10000, 0.1, 1.6633113315950355e-87},
		{10000, 0.2, 0.0},
		{10000, 0.3, 0.0},
		{10000, 0.5, 0.0},
		{10000, 0.7, 0.0},
		{10000, 0.9, 0.0},
		{10000, 0.99, 0.0},
		{100000, 0.0004, 1.0},
		{100000, 0.001, 0.9999638407940036},
		{100000, 0.003, 0.3284563327726956},
		{100000, 0.01, 4.093278023549254e-09},
		{100000, 0.03, 1.2701837245790524e-78},
		{100000, 0.05, 1.0446857833684497e-217},
		{100000, 0.1, 0.0},
		{100000, 0.2, 0.0},
		{100000, 0.3, 0.0},
		{100000, 0.5, 0.0},
		{100000, 0.7, 0.0},
		{100000, 0.9, 0.0},
		{100000, 0.99, 0.0},
		{200000, 0.0004, 0.9999999999999997},
		{200000, 0.001, 0.9881500208855729},
		{200000, 0.003, 0.0545369786611305},
		{200000, 0.01, 8.433125699870092e-18},
		{200000, 0.03, 8.226548921917665e-157},
		{200000, 0.05, 0.0},
		{200000, 0.1, 0.0},
		{200000, 0.2, 0.0},
		{200000, 0.3, 0.0},
		{200000, 0.5, 0.0},
		{200000, 0.7, 0.0},
		{200000, 0.9, 0.0},
		{200000, 0.99, 0.0},
	}
	for _, c := range cases {
		got := kolmogorovSF(c.n, c.x)
		// Deep tails are compared on a relative scale; values that scipy
		// rounds to exactly 0 or 1 must round the same way here, give or
		// take an ulp near 1.
		if !closeRel(got, c.sf, 1e-11) && math.Abs(got-c.sf) > 1e-15 {
			t.Errorf("kolmogorovSF(%d, %v) = %.17g, want %.17g", c.n, c.x, got, c.sf)
		}
	}
}

func TestKSTwoSampleIdenticalSamples(t *testing.T) {
	x := modularSample(50, 7, 101, 0)
	got, err := KSTwoSample(x, x)
	if err != nil {
		t.Fatal(err)
	}
	if got.D != 0 || got.PValue != 1 {
		t.Errorf("identical samples: D=%v p=%v, want 0 and 1", got.D, got.PValue)
	}
}

func TestKSTwoSampleSymmetric(t *testing.T) {
	x, y := modularSample(37, 17, 101, 0), modularSample(53, 29, 101, 15)
	a, _ := KSTwoSample(x, y)
	b, _ := KSTwoSample(y, x)
	if a.D != b.D || !closeRel(a.PValue, b.PValue, 1e-12) {
		t.Errorf("not symmetric: %+v vs %+v", a, b)
	}
}

// The lattice recursion and the closed form for equal sizes are different
// algorithms for the same quantity; agreement checks both.
func TestKSLatticeAgreesWithEqualSizeFormula(t *testing.T) {
	for _, n := range []int{1, 2, 7, 50, 333} {
		for h := 1; h <= n; h += max(1, n/9) {
			want := ksEqualSizesSF(n, h)
			got := ksLatticeSF(n, n, n, h)
			if !closeRel(got, want, 1e-11) && math.Abs(got-want) > 1e-300 {
				t.Errorf("n=%d h=%d: lattice %.17g, closed form %.17g", n, h, got, want)
			}
		}
	}
}

func TestKSTwoSampleErrors(t *testing.T) {
	if _, err := KSTwoSample(nil, []float64{1}); err == nil {
		t.Error("empty x accepted")
	}
	if _, err := KSTwoSample([]float64{1}, []float64{}); err == nil {
		t.Error("empty y accepted")
	}
	if _, err := KSTwoSample([]float64{1, math.NaN()}, []float64{2}); err == nil {
		t.Error("NaN accepted")
	}
}
