package stats

import (
	"math"
	"testing"
)

func TestMMDRFFApproximatesExact(t *testing.T) {
	rng := seeded(11)
	x := gaussianSample(rng, 150, 8, 0)
	y := gaussianSample(rng, 170, 8, 0.4)
	exact, err := MMDTest(x, y, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	approx, err := MMDRFFTest(x, y, 4096, 0, seeded(3))
	if err != nil {
		t.Fatal(err)
	}
	// With D features the kernel error is O(1/√D) per entry; averaged over
	// the sample it is far smaller. The bandwidths come from the same
	// median heuristic (here on every point).
	if math.Abs(approx.Bandwidth-exact.Bandwidth) > 1e-12 {
		t.Errorf("bandwidth %v, exact %v", approx.Bandwidth, exact.Bandwidth)
	}
	if math.Abs(approx.MMD2-exact.MMD2) > 0.01 {
		t.Errorf("RFF MMD² %v, exact %v", approx.MMD2, exact.MMD2)
	}
}

func TestMMDRFFDetectsShiftAndPValueBounds(t *testing.T) {
	rng := seeded(5)
	x := gaussianSample(rng, 300, 16, 0)
	y := gaussianSample(rng, 300, 16, 0.5)
	res, err := MMDRFFTest(x, y, 256, 199, seeded(9))
	if err != nil {
		t.Fatal(err)
	}
	if res.PValue != 1.0/200 {
		t.Errorf("clear shift: p = %v, want the minimum 1/(1+B) = %v", res.PValue, 1.0/200)
	}
	same, err := MMDRFFTest(x, x, 256, 199, seeded(9))
	if err != nil {
		t.Fatal(err)
	}
	if same.PValue < 0.2 {
		t.Errorf("identical samples: p = %v", same.PValue)
	}
}

func TestMMDRFFNullCalibration(t *testing.T) {
	const runs, alpha = 200, 0.05
	alarms := 0
	rng := seeded(21)
	for range runs {
		x := gaussianSample(rng, 60, 4, 0)
		y := gaussianSample(rng, 60, 4, 0)
		res, err := MMDRFFTest(x, y, 64, 99, rng)
		if err != nil {
			t.Fatal(err)
		}
		if res.PValue <= alpha {
			alarms++
		}
	}
	iv, _ := ClopperPearson(alarms, runs, 0.01)
	if !iv.Contains(alpha) {
		t.Errorf("null alarm rate %d/%d, 99%% interval %+v excludes α=%v", alarms, runs, iv, alpha)
	}
}

func TestMMDRFFErrors(t *testing.T) {
	x := [][]float32{{1}, {2}}
	if _, err := MMDRFFTest(x, x, 0, 10, seeded(1)); err == nil {
		t.Error("0 features accepted")
	}
	if _, err := MMDRFFTest(x, x, 8, 10, nil); err == nil {
		t.Error("nil rng accepted")
	}
	if _, err := MMDRFFTest(x, [][]float32{{1, 2}, {3, 4}}, 8, 10, seeded(1)); err == nil {
		t.Error("dimension mismatch accepted")
	}
}

func BenchmarkMMDRFF2000x2000d384F256p1000(b *testing.B) {
	rng := seeded(1)
	x := gaussianSample(rng, 2000, 384, 0)
	y := gaussianSample(rng, 2000, 384, 0.02)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MMDRFFTest(x, y, 256, 1000, seeded(2)); err != nil {
			b.Fatal(err)
		}
	}
}
