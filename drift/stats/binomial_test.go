package stats

import (
	"math"
	"testing"
)

// Reference values from Debian's scipy 1.10 (/usr/bin/python3):
// Clopper–Pearson as scipy.stats.beta.ppf(alpha/2, k, n-k+1) and
// beta.ppf(1-alpha/2, k+1, n-k); Wilson from its closed form with
// z = scipy.stats.norm.ppf(1-alpha/2).
func TestBinomialIntervals(t *testing.T) {
	cases := []struct {
		k, n         int
		alpha        float64
		cpLo, cpHi   float64
		wilLo, wilHi float64
	}{
		{2, 200, 0.05, 0.001213349013736031, 0.035654668397239776, 0.0027466581335444384, 0.0357217617161768},
		{0, 200, 0.05, 0, 0.018275340355136237, 0, 0.018845326377266575},
		{10, 20, 0.05, 0.27195784956079183, 0.7280421504392081, 0.2992980081982123, 0.7007019918017877},
		{200, 200, 0.05, 0.9817246596448638, 1, 0.9811546736227335, 1},
		{7, 500, 0.05, 0.005646761070324431, 0.028631616183336053, 0.006797789790843492, 0.028613069137785288},
	}
	for _, c := range cases {
		cp, err := ClopperPearson(c.k, c.n, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(cp.Lo-c.cpLo) > 1e-9 || math.Abs(cp.Hi-c.cpHi) > 1e-9 {
			t.Errorf("ClopperPearson(%d,%d) = %+v, want [%v, %v]", c.k, c.n, cp, c.cpLo, c.cpHi)
		}
		w, err := Wilson(c.k, c.n, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(w.Lo-c.wilLo) > 1e-9 || math.Abs(w.Hi-c.wilHi) > 1e-9 {
			t.Errorf("Wilson(%d,%d) = %+v, want [%v, %v]", c.k, c.n, w, c.wilLo, c.wilHi)
		}
	}
	if _, err := ClopperPearson(3, 2, 0.05); err == nil {
		t.Error("k > n accepted")
	}
	if _, err := Wilson(1, 2, 0); err == nil {
		t.Error("alpha 0 accepted")
	}
}
