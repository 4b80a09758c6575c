package score

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestClassifyUniformIsMostUncertain(t *testing.T) {
	c := Classify([]float32{0.25, 0.25, 0.25, 0.25}, 4)
	if !near(c.Entropy, 1) || !near(c.Margin, 1) || !near(c.LeastConfidence, 1) {
		t.Fatalf("uniform: %+v, want all 1", c)
	}
}

func TestClassifyCertainIsZero(t *testing.T) {
	c := Classify([]float32{0, 1, 0}, 3)
	if !near(c.Entropy, 0) || !near(c.Margin, 0) || !near(c.LeastConfidence, 0) {
		t.Fatalf("one-hot: %+v, want all 0", c)
	}
}

func TestClassifyOrdersByUncertainty(t *testing.T) {
	sure := Classify([]float32{0.9, 0.05, 0.05}, 3)
	torn := Classify([]float32{0.48, 0.47, 0.05}, 3)
	for _, m := range []Measure{Entropy, Margin, LeastConfidence} {
		if !(torn.Pick(m) > sure.Pick(m)) {
			t.Errorf("%s: torn %v should exceed sure %v", m, torn.Pick(m), sure.Pick(m))
		}
	}
	if !near(torn.Margin, 1-0.01) {
		t.Errorf("margin = %v, want 0.99", torn.Margin)
	}
}

func TestClassifyTopKSpreadsMissingMass(t *testing.T) {
	// top-2 of 4 classes with 0.2 left: the missing two share it (0.1 each).
	c := Classify([]float32{0.5, 0.3}, 4)
	want := -(0.5*math.Log(0.5) + 0.3*math.Log(0.3) + 2*0.1*math.Log(0.1)) / math.Log(4)
	if !near(c.Entropy, want) {
		t.Fatalf("entropy %v, want %v", c.Entropy, want)
	}
}

func TestDetect(t *testing.T) {
	d := Detect([]float32{0.9, 0.7}, 0.5)
	if d.NoConfidentBox || !near(d.Mean, 0.8) || !near(d.Min, 0.7) || !near(d.Uncertainty, 0.2) {
		t.Fatalf("confident boxes: %+v", d)
	}
	d = Detect([]float32{0.3, 0.1}, 0.5)
	if !d.NoConfidentBox || !near(d.Uncertainty, 0.7) {
		t.Fatalf("unsure boxes: %+v", d)
	}
	if d := Detect(nil, 0.5); d.Uncertainty != 0 || d.NoConfidentBox {
		t.Fatalf("no boxes: %+v", d)
	}
}

func TestDisagreement(t *testing.T) {
	a := Output{PredictedClass: "ok", Classes: []string{"dent", "ok"}, Probs: []float32{0.2, 0.8}}
	b := Output{PredictedClass: "ok", Classes: []string{"dent", "ok"}, Probs: []float32{0.2, 0.8}}
	if d := Disagreement(a, b); d != 0 {
		t.Fatalf("equal outputs disagree by %v", d)
	}
	c := Output{PredictedClass: "dent", Classes: []string{"dent", "ok"}, Probs: []float32{0.9, 0.1}}
	if d := Disagreement(a, c); !near(d, 0.7) {
		t.Fatalf("TV distance %v, want 0.7", d)
	}
	flip := Output{PredictedClass: "dent", Classes: []string{"dent", "ok"}, Probs: []float32{0.51, 0.49}}
	near1 := Output{PredictedClass: "ok", Classes: []string{"dent", "ok"}, Probs: []float32{0.49, 0.51}}
	if d := Disagreement(flip, near1); d < 0.5 {
		t.Fatalf("flipped decision scores %v, want ≥ 0.5", d)
	}
	if d := Disagreement(Output{PredictedClass: "x"}, Output{PredictedClass: "y"}); d != 1 {
		t.Fatalf("boxes-only flip = %v, want 1", d)
	}
}

func TestDriftSignals(t *testing.T) {
	f := DriftSignals{Event: map[string]float64{"e9": 1}, Scope: map[[3]string]float64{{"m", "v1", "cam-2"}: 0.5}}
	cases := []struct {
		s    Subject
		want float64
	}{
		{Subject{EventID: "e1", Model: "m", ModelVersion: "v1", Source: "cam-2"}, 0.5},
		{Subject{EventID: "e9", Model: "m", ModelVersion: "v1", Source: "cam-2"}, 1},
		{Subject{EventID: "e2", Model: "m", ModelVersion: "v1", Source: "cam-1"}, 0},
	}
	for _, c := range cases {
		if got := f.Foreignness(c.s); got != c.want {
			t.Errorf("%+v: %v, want %v", c.s, got, c.want)
		}
	}
}
