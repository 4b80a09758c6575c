package stats

import (
	"math"
	"slices"
	"testing"
)

var correctionInput = []float64{0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9, 0.0001, 0.5, 0.049}

// Reference values: Benjamini–Hochberg computed by hand in
// testdata/reference.py (statsmodels is not available there).
func TestBenjaminiHochbergMatchesReference(t *testing.T) {
	want := []float64{0.03333333333333333, 0.06666666666666667, 0.06666666666666667, 0.025, 0.25, 0.06666666666666667, 0.9, 0.001, 0.5555555555555556, 0.06999999999999999}
	in := slices.Clone(correctionInput)
	got := BenjaminiHochberg(in)
	if !slices.Equal(in, correctionInput) {
		t.Error("input modified")
	}
	for i := range want {
		if !closeRel(got[i], want[i], 1e-15) {
			t.Errorf("BH[%d] = %.17g, want %.17g", i, got[i], want[i])
		}
	}
}

// Reference values: min(1, m·p), printed by testdata/reference.py.
func TestBonferroniMatchesReference(t *testing.T) {
	want := []float64{0.1, 0.4, 0.3, 0.05, 1.0, 0.4, 1.0, 0.001, 1.0, 0.49}
	got := Bonferroni(correctionInput)
	for i := range want {
		if !closeRel(got[i], want[i], 1e-15) {
			t.Errorf("Bonferroni[%d] = %.17g, want %.17g", i, got[i], want[i])
		}
	}
}

func TestCorrectionsSkipNaN(t *testing.T) {
	in := []float64{0.01, math.NaN(), 0.04}
	bh := BenjaminiHochberg(in)
	bf := Bonferroni(in)
	if !math.IsNaN(bh[1]) || !math.IsNaN(bf[1]) {
		t.Errorf("NaN not preserved: %v %v", bh, bf)
	}
	// m = 2: BH gives [0.02, 0.04], Bonferroni [0.02, 0.08].
	if bh[0] != 0.02 || bh[2] != 0.04 || bf[0] != 0.02 || bf[2] != 0.08 {
		t.Errorf("BH %v, Bonferroni %v", bh, bf)
	}
	if len(BenjaminiHochberg(nil)) != 0 || len(Bonferroni(nil)) != 0 {
		t.Error("empty input should give empty output")
	}
}
