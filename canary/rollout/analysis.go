package rollout

import (
	"context"
	"fmt"
	"slices"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/drift/stats"
	"github.com/lookout-dev/lookout/internal/config"
)

// Metric verdicts.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
)

// Labelled is an arm's accuracy on labelled traffic.
type Labelled struct {
	N       int
	Correct int
}

// AccuracySource reports per-arm labelled accuracy of a rollout.
type AccuracySource interface {
	Accuracy(ctx context.Context, model, rolloutID string) (map[string]Labelled, error)
}

// ksAlpha is the significance a confidence-distribution difference must
// reach before its effect size (the KS D) may fail the canary.
const ksAlpha = 0.01

// analyse compares the canary arm with stable. Every metric is inconclusive
// below its sample floor; the verdict fails when any metric fails, passes
// when none fails and the error rate could be judged, and is inconclusive
// otherwise.
func analyse(th config.Rollout, stable, canary router.ArmStats, acc map[string]Labelled) Analysis {
	var ms []Metric
	enough := stable.Requests >= th.MinSamples && canary.Requests >= th.MinSamples
	ms = append(ms, errorRate(th, stable, canary, enough))
	ms = append(ms, p99(th, stable, canary))
	ms = append(ms, confidence(th, stable, canary)...)
	ms = append(ms, classJS(th, stable, canary))
	ms = append(ms, agreement(th, canary))
	ms = append(ms, accuracy(th, acc))
	a := Analysis{Metrics: ms, Verdict: Inconclusive}
	if ms[0].Status == Pass {
		a.Verdict = Pass
	}
	for _, m := range ms {
		if m.Status == Fail {
			a.Verdict = Fail
		}
	}
	return a
}

func status(ok, enough bool) string {
	switch {
	case !enough:
		return Inconclusive
	case ok:
		return Pass
	}
	return Fail
}

func rate(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func errorRate(th config.Rollout, s, c router.ArmStats, enough bool) Metric {
	m := Metric{Name: "error_rate", Stable: rate(s.Errors, s.Requests), Canary: rate(c.Errors, c.Requests),
		Threshold: th.MaxErrorRateIncrease, Samples: c.Requests}
	m.Value = m.Canary - m.Stable
	m.Status = status(m.Value <= m.Threshold, enough)
	return m
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func p99(th config.Rollout, s, c router.ArmStats) Metric {
	m := Metric{Name: "p99_latency_seconds", Stable: quantile(s.Latencies, 0.99), Canary: quantile(c.Latencies, 0.99),
		Threshold: th.MaxP99Increase.Seconds(), Samples: len(c.Latencies)}
	m.Value = m.Canary - m.Stable
	m.Status = status(m.Value <= m.Threshold, len(s.Latencies) >= th.MinSamples && len(c.Latencies) >= th.MinSamples)
	return m
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func confidence(th config.Rollout, s, c router.ArmStats) []Metric {
	enough := len(s.Confidences) >= th.MinSamples && len(c.Confidences) >= th.MinSamples
	drop := Metric{Name: "mean_confidence", Stable: mean(s.Confidences), Canary: mean(c.Confidences),
		Threshold: th.MaxConfidenceDrop, Samples: len(c.Confidences)}
	drop.Value = drop.Stable - drop.Canary
	drop.Status = status(drop.Value <= drop.Threshold, enough)
	ks := Metric{Name: "confidence_ks", Threshold: th.MaxConfidenceKS, Samples: len(c.Confidences), Status: Inconclusive}
	if enough {
		r, err := stats.KSTwoSample(s.Confidences, c.Confidences)
		if err != nil {
			ks.Detail = err.Error()
		} else {
			ks.Value = r.D
			ks.Detail = fmt.Sprintf("p=%.3g", r.PValue)
			ks.Status = status(r.D <= th.MaxConfidenceKS || r.PValue >= ksAlpha, true)
		}
	}
	return []Metric{drop, ks}
}

func total(m map[string]float64) int {
	var n float64
	for _, v := range m {
		n += v
	}
	return int(n)
}

func classJS(th config.Rollout, s, c router.ArmStats) Metric {
	m := Metric{Name: "class_js_distance", Threshold: th.MaxClassJS, Samples: total(c.Classes), Status: Inconclusive}
	if total(s.Classes) < th.MinSamples || total(c.Classes) < th.MinSamples {
		return m
	}
	js, err := stats.JensenShannonDistance(s.Classes, c.Classes)
	if err != nil {
		m.Detail = err.Error()
		return m
	}
	m.Value = js
	m.Status = status(js <= th.MaxClassJS, true)
	return m
}

func agreement(th config.Rollout, c router.ArmStats) Metric {
	m := Metric{Name: "shadow_agreement", Threshold: th.MinShadowAgreement, Samples: c.ShadowCompared,
		Value: rate(c.ShadowAgreed, c.ShadowCompared)}
	m.Canary = m.Value
	m.Status = status(m.Value >= th.MinShadowAgreement, c.ShadowCompared >= th.MinSamples)
	return m
}

func accuracy(th config.Rollout, acc map[string]Labelled) Metric {
	s, c := acc["stable"], acc["canary"]
	m := Metric{Name: "labelled_accuracy", Stable: rate(s.Correct, s.N), Canary: rate(c.Correct, c.N),
		Threshold: th.MaxAccuracyDrop, Samples: c.N}
	m.Value = m.Stable - m.Canary
	m.Status = status(m.Value <= m.Threshold, s.N >= th.MinLabelled && c.N >= th.MinLabelled)
	return m
}
