package rollout

import (
	"testing"
	"time"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/config"
)

func arm(n int, errs int, latency, conf float64, classes map[string]float64) router.ArmStats {
	s := router.ArmStats{Requests: n, Errors: errs, Classes: classes}
	for i := range n - errs {
		// A spread of values so KS compares distributions, not constants.
		s.Latencies = append(s.Latencies, latency*(1+float64(i%10)/100))
		s.Confidences = append(s.Confidences, conf-float64(i%10)/100)
	}
	return s
}

func statusOf(a Analysis, name string) string {
	for _, m := range a.Metrics {
		if m.Name == name {
			return m.Status
		}
	}
	return "missing"
}

func TestAnalyse(t *testing.T) {
	th := config.Default().Canary.Rollout
	th.MinSamples = 50
	th.MaxP99Increase = 50 * time.Millisecond
	mix := map[string]float64{"good": 180, "dent": 20}
	stable := arm(200, 0, 0.010, 0.9, mix)
	for _, c := range []struct {
		name    string
		canary  router.ArmStats
		acc     map[string]Labelled
		verdict string
		metric  string
		status  string
	}{
		{"same", arm(200, 0, 0.010, 0.9, mix), nil, Pass, "labelled_accuracy", Inconclusive},
		{"errors", arm(200, 20, 0.010, 0.9, mix), nil, Fail, "error_rate", Fail},
		{"slow", arm(200, 0, 0.200, 0.9, mix), nil, Fail, "p99_latency_seconds", Fail},
		{"unsure", arm(200, 0, 0.010, 0.6, mix), nil, Fail, "mean_confidence", Fail},
		{"unsure-ks", arm(200, 0, 0.010, 0.6, mix), nil, Fail, "confidence_ks", Fail},
		{"other classes", arm(200, 0, 0.010, 0.9, map[string]float64{"good": 60, "dent": 140}), nil, Fail, "class_js_distance", Fail},
		{"few", arm(20, 0, 0.010, 0.5, mix), nil, Inconclusive, "error_rate", Inconclusive},
		{"less accurate", arm(200, 0, 0.010, 0.9, mix),
			map[string]Labelled{"stable": {N: 100, Correct: 95}, "canary": {N: 100, Correct: 80}}, Fail, "labelled_accuracy", Fail},
		{"as accurate", arm(200, 0, 0.010, 0.9, mix),
			map[string]Labelled{"stable": {N: 100, Correct: 95}, "canary": {N: 100, Correct: 94}}, Pass, "labelled_accuracy", Pass},
	} {
		a := analyse(th, stable, c.canary, c.acc)
		if a.Verdict != c.verdict || statusOf(a, c.metric) != c.status {
			t.Errorf("%s: verdict %s, %s %s; want %s, %s %s (%+v)", c.name, a.Verdict, c.metric, statusOf(a, c.metric),
				c.verdict, c.metric, c.status, a.Metrics)
		}
	}
	// Shadow agreement is judged on mirrored comparisons alone.
	sh := arm(200, 0, 0.010, 0.9, mix)
	sh.ShadowCompared, sh.ShadowAgreed = 100, 70
	if a := analyse(th, stable, sh, nil); statusOf(a, "shadow_agreement") != Fail || a.Verdict != Fail {
		t.Errorf("70%% shadow agreement: %+v", a)
	}
}
