package stats

import (
	"math"
	"testing"
)

// Reference values: scipy 1.10.1, printed by testdata/reference.py
// (CATEGORICAL_CASES): chi2_contingency(correction=False), the same with
// lambda_="log-likelihood", Cramér's V (checked there against
// scipy.stats.contingency.association), jensenshannon(base=2) and PSI with
// eps = 1e-4 computed by hand.
var categoricalCases = []struct {
	name         string
	ref, cur     map[string]float64
	chi2, pChi2  float64
	dof          int
	g, pG        float64
	cramersV, js float64
	psi          float64
}{
	{
		name: "shifted",
		ref:  map[string]float64{"a": 120, "b": 80, "c": 40, "d": 10},
		cur:  map[string]float64{"a": 100, "b": 95, "c": 30, "d": 25, "e": 5},
		chi2: 15.91309396485867, pChi2: 0.0031380232637276736, dof: 4,
		g: 18.06485589612297, pG: 0.0011985949217331582,
		cramersV: 0.17751359710775955, js: 0.16081132322853584, psi: 0.19377196171022668,
	},
	{
		name: "stable",
		ref:  map[string]float64{"red": 500, "green": 300, "blue": 200},
		cur:  map[string]float64{"red": 510, "green": 290, "blue": 205},
		chi2: 0.31776296967096224, pChi2: 0.8530974579637124, dof: 2,
		g: 0.3177722825055245, pG: 0.8530934855952153,
		cramersV: 0.012589093361173403, js: 0.010692331872646984, psi: 0.0006339880590578779,
	},
	{
		name: "weighted",
		ref:  map[string]float64{"x": 10.5, "y": 3.25, "z": 0.75, "never": 0},
		cur:  map[string]float64{"x": 8.0, "y": 6.5, "z": 2.25, "never": 0},
		chi2: 2.019640990063661, pChi2: 0.3642843645561472, dof: 2,
		g: 2.0659493566806786, pG: 0.3559465576569125,
		cramersV: 0.25422138321163534, js: 0.21930843067788108, psi: 0.27141065314268586,
	},
	{
		name: "two_categories",
		ref:  map[string]float64{"yes": 30, "no": 70},
		cur:  map[string]float64{"yes": 45, "no": 55},
		chi2: 4.8, pChi2: 0.028459736916310638, dof: 1,
		g: 4.824672109496449, pG: 0.028055200955279684,
		cramersV: 0.15491933384829668, js: 0.1319140868736712, psi: 0.09699407473875785,
	},
}

const categoricalTol = 1e-12

func TestChiSquareAndGTestMatchScipy(t *testing.T) {
	for _, c := range categoricalCases {
		t.Run(c.name, func(t *testing.T) {
			chi, err := ChiSquare(c.ref, c.cur)
			if err != nil {
				t.Fatal(err)
			}
			want := ChiSquareResult{Statistic: c.chi2, PValue: c.pChi2, DOF: c.dof}
			checkChiSquare(t, "ChiSquare", chi, want)
			g, err := GTest(c.ref, c.cur)
			if err != nil {
				t.Fatal(err)
			}
			checkChiSquare(t, "GTest", g, ChiSquareResult{Statistic: c.g, PValue: c.pG, DOF: c.dof})
		})
	}
}

func checkChiSquare(t *testing.T, name string, got, want ChiSquareResult) {
	t.Helper()
	if got.DOF != want.DOF ||
		!closeRel(got.Statistic, want.Statistic, categoricalTol) ||
		!closeRel(got.PValue, want.PValue, 1e-10) {
		t.Errorf("%s = %+v, want %+v", name, got, want)
	}
}

func TestEffectSizesMatchReference(t *testing.T) {
	for _, c := range categoricalCases {
		t.Run(c.name, func(t *testing.T) {
			checks := []struct {
				name string
				fn   func() (float64, error)
				want float64
			}{
				{"CramersV", func() (float64, error) { return CramersV(c.ref, c.cur) }, c.cramersV},
				{"JensenShannonDistance", func() (float64, error) { return JensenShannonDistance(c.ref, c.cur) }, c.js},
				{"PSI", func() (float64, error) { return PSI(c.ref, c.cur, 1e-4) }, c.psi},
			}
			for _, ch := range checks {
				got, err := ch.fn()
				if err != nil {
					t.Fatalf("%s: %v", ch.name, err)
				}
				if !closeRel(got, ch.want, categoricalTol) {
					t.Errorf("%s = %.17g, want %.17g", ch.name, got, ch.want)
				}
			}
		})
	}
}

func TestJensenShannonBounds(t *testing.T) {
	same := map[string]float64{"a": 3, "b": 1}
	if d, _ := JensenShannonDistance(same, map[string]float64{"a": 6, "b": 2}); d != 0 {
		t.Errorf("proportional histograms: distance %v, want 0", d)
	}
	d, err := JensenShannonDistance(map[string]float64{"a": 1, "b": 0}, map[string]float64{"b": 5})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d-1) > 1e-15 {
		t.Errorf("disjoint supports: distance %v, want 1", d)
	}
}

func TestPSIEmptyCategory(t *testing.T) {
	ref := map[string]float64{"a": 1, "b": 1}
	cur := map[string]float64{"a": 2}
	if got, _ := PSI(ref, cur, 0); !math.IsInf(got, 1) {
		t.Errorf("eps=0 with an empty category: %v, want +Inf", got)
	}
	// With eps = 1e-4: (1−0.5)ln(1/0.5) + (1e-4−0.5)ln(1e-4/0.5).
	want := 0.5*math.Log(2) + (1e-4-0.5)*math.Log(1e-4/0.5)
	if got, _ := PSI(ref, cur, 1e-4); !closeRel(got, want, 1e-14) {
		t.Errorf("PSI = %v, want %v", got, want)
	}
	if _, err := PSI(ref, cur, -1); err == nil {
		t.Error("negative eps accepted")
	}
}

func TestCategoricalErrors(t *testing.T) {
	good := map[string]float64{"a": 1, "b": 2}
	bad := map[string]map[string]float64{
		"empty":    {},
		"all zero": {"a": 0, "b": 0},
		"negative": {"a": -1, "b": 3},
		"NaN":      {"a": math.NaN(), "b": 3},
		"infinite": {"a": math.Inf(1), "b": 3},
	}
	fns := map[string]func(a, b map[string]float64) error{
		"ChiSquare": func(a, b map[string]float64) error { _, err := ChiSquare(a, b); return err },
		"GTest":     func(a, b map[string]float64) error { _, err := GTest(a, b); return err },
		"CramersV":  func(a, b map[string]float64) error { _, err := CramersV(a, b); return err },
		"JS":        func(a, b map[string]float64) error { _, err := JensenShannonDistance(a, b); return err },
		"PSI":       func(a, b map[string]float64) error { _, err := PSI(a, b, 1e-4); return err },
	}
	for fname, fn := range fns {
		for bname, b := range bad {
			if fn(good, b) == nil || fn(b, good) == nil {
				t.Errorf("%s accepted %s side", fname, bname)
			}
		}
		single := map[string]float64{"a": 5, "z": 0}
		if fn(single, map[string]float64{"a": 2}) == nil {
			t.Errorf("%s accepted a single category", fname)
		}
		// One side missing a category the other has is drift, not an error.
		if err := fn(map[string]float64{"a": 5}, good); err != nil {
			t.Errorf("%s rejected a category missing on one side: %v", fname, err)
		}
	}
}

// Map iteration order is random; results must not depend on it.
func TestCategoricalDeterministic(t *testing.T) {
	c := categoricalCases[0]
	first, _ := GTest(c.ref, c.cur)
	for range 20 {
		if again, _ := GTest(c.ref, c.cur); again != first {
			t.Fatalf("GTest not deterministic: %+v vs %+v", again, first)
		}
	}
}
