package embed

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lookout-dev/lookout/internal/event"
)

// pred makes a classification whose top probability (class "a") is conf,
// the rest spread over enough classes that each stays below it.
func pred(id, source string, ts time.Time, conf float64) event.Prediction {
	probs := map[string]float64{"a": conf}
	k := int(math.Ceil((1-conf)/conf)) + 1
	for i := range k {
		probs[fmt.Sprintf("c%d", i)] = (1 - conf) / float64(k)
	}
	return event.Prediction{EventID: id, TS: ts, Model: "m", ModelVersion: "v", Source: source,
		Task: event.TaskClassification, PredictedClass: "a", Probs: event.ProbsOf(probs)}
}

// TestSamplerFloorRaisesQuietSources feeds a busy and a quiet source for ten
// one-minute windows: the busy one is sampled at the base rate, the quiet
// one at Floor/N_prev from its second window on, and every weight is 1/p.
func TestSamplerFloorRaisesQuietSources(t *testing.T) {
	s := NewSampler(SamplingConfig{Rate: 0.05, Window: time.Minute, Floor: 20}, nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const windows, busy, quiet = 10, 2000, 50
	taken := map[string][]int{"busy": make([]int, windows), "quiet": make([]int, windows)}
	weights := map[string]float64{"busy": 0, "quiet": 0}
	for w := range windows {
		for i := range busy {
			ts := t0.Add(time.Duration(w)*time.Minute + time.Duration(i)*time.Minute/busy)
			sources := []string{"busy"}
			if i%(busy/quiet) == 0 {
				sources = append(sources, "quiet")
			}
			for _, src := range sources {
				p := pred(fmt.Sprintf("%s-%d-%d", src, w, i), src, ts, 0.9)
				wt, ok := s.Decide(&p, t0)
				if !ok {
					continue
				}
				taken[src][w]++
				if w > 0 {
					weights[src] += wt
				}
				want := 1 / 0.05
				if src == "quiet" && w > 0 {
					want = float64(quiet) / 20
				}
				if math.Abs(wt-want) > 1e-9 {
					t.Fatalf("%s window %d: weight %v, want %v", src, w, wt, want)
				}
			}
		}
	}
	sumQuiet, sumBusy := 0, 0
	for w := 1; w < windows; w++ {
		sumQuiet += taken["quiet"][w]
		sumBusy += taken["busy"][w]
	}
	// Quiet: 9 windows × Binomial(50, 0.4), mean 180, sd ≈ 10.4.
	if sumQuiet < 130 || sumQuiet > 230 {
		t.Errorf("quiet source got %d samples over 9 windows, want ≈ 180 (floor 20/window)", sumQuiet)
	}
	// Busy: 9 × Binomial(2000, 0.05), mean 900, sd ≈ 29.
	if sumBusy < 750 || sumBusy > 1050 {
		t.Errorf("busy source got %d samples over 9 windows, want ≈ 900", sumBusy)
	}
	// Horvitz–Thompson: the weights estimate the true counts.
	for src, n := range map[string]float64{"busy": 9 * busy, "quiet": 9 * quiet} {
		if rel := math.Abs(weights[src]-n) / n; rel > 0.15 {
			t.Errorf("%s: weighted count %.0f, true %.0f", src, weights[src], n)
		}
	}
}

// TestSamplerBoostsUncertainEventsUnbiased samples uncertain events at
// rate×boost and keeps the weighted share of uncertain events unbiased.
func TestSamplerBoostsUncertainEventsUnbiased(t *testing.T) {
	s := NewSampler(SamplingConfig{Rate: 0.1, UncertainBelow: 0.5, UncertaintyBoost: 4}, nil)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 20000
	var sure, unsure int
	var wSure, wUnsure float64
	for i := range n {
		conf := 0.9
		if i%10 == 0 { // 10% of the stream is uncertain
			conf = 0.3
		}
		p := pred(fmt.Sprintf("e-%d", i), "cam", ts, conf)
		w, ok := s.Decide(&p, ts)
		if !ok {
			continue
		}
		if conf < 0.5 {
			unsure++
			wUnsure += w
			if math.Abs(w-2.5) > 1e-9 {
				t.Fatalf("uncertain weight %v, want 1/0.4", w)
			}
		} else {
			sure++
			wSure += w
		}
		again, ok2 := s.Decide(&p, ts)
		if !ok2 || again != w {
			t.Fatal("the same event got a different decision")
		}
	}
	// Raw sample: uncertain share ≈ 0.04×n / (0.04n + 0.09n) ≈ 31%, not 10%.
	if share := float64(unsure) / float64(unsure+sure); share < 0.25 || share > 0.37 {
		t.Errorf("uncertain share of the sample %.3f, want ≈ 0.31 (boosted)", share)
	}
	// Weighted: back to the stream's 10%.
	if share := wUnsure / (wUnsure + wSure); math.Abs(share-0.1) > 0.015 {
		t.Errorf("weighted uncertain share %.3f, want ≈ 0.10", share)
	}
}

// TestSamplerRateLimit caps sampled events with a token bucket and counts
// what it drops.
func TestSamplerRateLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewStageMetrics(reg)
	s := NewSampler(SamplingConfig{Rate: 1, MaxPerSecond: 10, Burst: 5}, m)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	decide := func(i int) bool {
		p := pred(fmt.Sprintf("r-%d", i), "cam", now, 0.9)
		_, ok := s.Decide(&p, now)
		return ok
	}
	allowed := 0
	for i := range 100 {
		if decide(i) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("burst allowed %d, want 5", allowed)
	}
	now = now.Add(time.Second)
	allowed = 0
	for i := range 100 {
		if decide(100 + i) {
			allowed++
		}
	}
	if allowed != 5 { // refilled to the burst depth, not beyond
		t.Fatalf("after 1 s allowed %d, want 5 (burst)", allowed)
	}
	now = now.Add(300 * time.Millisecond)
	if !decide(1000) || !decide(1001) || !decide(1002) || decide(1003) {
		t.Fatal("300 ms at 10/s should refill 3 tokens")
	}
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("rate_limited")); got != 191 {
		t.Errorf("rate_limited = %v, want 191", got)
	}
}

func TestSamplingConfigValidate(t *testing.T) {
	for _, c := range []SamplingConfig{
		{Rate: 1.5}, {Rate: -0.1}, {Rate: math.NaN()}, {Rate: 0.1, Floor: -1},
		{Rate: 0.1, UncertaintyBoost: 0.5}, {Rate: 0.1, UncertainBelow: 2}, {Rate: 0.1, MaxPerSecond: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (SamplingConfig{Rate: 0.25, Window: time.Minute, Floor: 20, UncertainBelow: 0.5, UncertaintyBoost: 3}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestSamplerSkipAgreesWithDecide checks the pre-parse shortcut: it may only
// skip events Decide would not take, and never when a floor needs counts.
func TestSamplerSkipAgreesWithDecide(t *testing.T) {
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSampler(SamplingConfig{Rate: 0.1, UncertainBelow: 0.5, UncertaintyBoost: 3}, nil)
	skipped := 0
	for i := range 5000 {
		id := fmt.Sprintf("k-%d", i)
		p := pred(id, "cam", ts, 0.3) // boosted: p = 0.3
		if s.Skip([]byte(id)) {
			skipped++
			if _, ok := s.Decide(&p, ts); ok {
				t.Fatalf("%s skipped before parsing but sampled after", id)
			}
		}
	}
	if skipped < 3000 || skipped > 4000 { // ≈ 70%
		t.Errorf("skipped %d of 5000, want ≈ 3500", skipped)
	}
	floor := NewSampler(SamplingConfig{Rate: 0.1, Window: time.Minute, Floor: 5}, nil)
	for i := range 100 {
		if floor.Skip([]byte(fmt.Sprintf("k-%d", i))) {
			t.Fatal("skipped with a floor configured")
		}
	}
}
