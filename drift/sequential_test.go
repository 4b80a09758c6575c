package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestCUSUMThresholdGivesTheRunLength(t *testing.T) {
	for _, arl := range []int{50, 500} {
		h := CUSUMThreshold(arl)
		// An independent simulation (other seed) of null run lengths.
		rng := rand.New(rand.NewPCG(77, uint64(arl)))
		const paths = 2000
		var total float64
		for range paths {
			s, n := 0.0, 0
			for {
				n++
				s = max(0, s-math.Log(1-rng.Float64())-cusumDrift)
				if s > h {
					break
				}
			}
			total += float64(n)
		}
		mean := total / paths
		t.Logf("arl %d: h=%.3f, simulated mean run length %.1f", arl, h, mean)
		if mean < 0.8*float64(arl) || mean > 1.25*float64(arl) {
			t.Errorf("arl %d: h=%.3f gives mean run length %.1f", arl, h, mean)
		}
	}
}

func TestSequentialAccumulatesOnlyRealEffects(t *testing.T) {
	q := newSequential(500)
	sc := Scope{"m", "v1", "cam"}
	base := Report{Scope: sc}
	run := func(p, effect float64) Report {
		return q.update(base, []Report{{Scope: sc, Result: Result{Test: TestScoresKS, Status: StatusOK, PValue: p, Effect: effect, MinEffect: 0.1}}})
	}
	// Significant but below the effect floor: never accumulates.
	for range 50 {
		if r := run(1e-8, 0.05); r.Flagged() || r.Statistic != 0 {
			t.Fatalf("sub-floor effect accumulated: %+v", r.Result)
		}
	}
	// Moderate evidence (p = 0.02 each run, not significant at 0.01 on its
	// own) with a real effect adds up to an alarm within a few runs.
	fired := 0
	for i := range 10 {
		if r := run(0.02, 0.2); r.Flagged() {
			fired = i + 1
			break
		}
	}
	if fired == 0 {
		t.Errorf("CUSUM (h=%.2f) never fired on repeated p=0.02", q.h)
	}
	t.Logf("h=%.2f, fired after %d runs", q.h, fired)
	if newSequential(0) != nil {
		t.Error("sequential mode on with arl 0")
	}
}
