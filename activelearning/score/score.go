// Package score turns one model output into the uncertainty numbers that
// decide which images are worth a labeller's time: least confidence, margin
// and entropy for classifiers, box-confidence summaries for detectors, the
// disagreement between a stable and a canary model on the same image, and a
// hook for how foreign an image is to the reference domain.
//
// Every score is scaled to [0,1] with 1 meaning "most worth labelling", so
// they can be weighted and added.
package score

import (
	"math"
	"sort"
)

// Measure names an uncertainty measure for classification.
type Measure string

// Uncertainty measures.
const (
	Entropy         Measure = "entropy"
	Margin          Measure = "margin"
	LeastConfidence Measure = "least_confidence"
)

// Classification holds the three classic uncertainty scores of a softmax.
type Classification struct {
	// LeastConfidence is 1 − top probability, scaled by K/(K−1) so a uniform
	// distribution scores 1.
	LeastConfidence float64
	// Margin is 1 − (p1 − p2): 1 when the top two tie.
	Margin float64
	// Entropy is the Shannon entropy divided by log K: 1 for uniform.
	Entropy float64
}

// Classify scores a probability vector (any order; it need not be sorted).
// K is the number of classes the model knows; fewer probs than K (a top-k
// list) leave the remaining mass spread evenly over the missing classes.
func Classify(probs []float32, k int) Classification {
	k = max(k, len(probs))
	if k < 2 {
		return Classification{}
	}
	p1, p2, sum, h := 0.0, 0.0, 0.0, 0.0
	for _, v := range probs {
		f := float64(v)
		switch {
		case f > p1:
			p1, p2 = f, p1
		case f > p2:
			p2 = f
		}
		sum += f
		if f > 0 {
			h -= f * math.Log(f)
		}
	}
	if missing := k - len(probs); missing > 0 && sum < 1 {
		rest := (1 - sum) / float64(missing)
		if rest > p2 {
			p2 = min(rest, p1)
		}
		if rest > 0 {
			h -= float64(missing) * rest * math.Log(rest)
		}
	}
	kf := float64(k)
	return Classification{
		LeastConfidence: clamp01((1 - p1) * kf / (kf - 1)),
		Margin:          clamp01(1 - (p1 - p2)),
		Entropy:         clamp01(h / math.Log(kf)),
	}
}

// Pick returns the score of measure m.
func (c Classification) Pick(m Measure) float64 {
	switch m {
	case Margin:
		return c.Margin
	case LeastConfidence:
		return c.LeastConfidence
	default:
		return c.Entropy
	}
}

// Detection summarises the box confidences of one image.
type Detection struct {
	Boxes int
	// Mean, Min and Max are over box scores (0 without boxes).
	Mean, Min, Max float64
	// NoConfidentBox is true when boxes exist but none reaches the
	// confidence threshold: the detector saw something and is unsure what.
	NoConfidentBox bool
	// Uncertainty is 1 − mean box score, or 1 − max when no box is
	// confident (the image is as unsure as its best box); 0 without boxes.
	Uncertainty float64
}

// Detect scores the boxes of one image against the confident threshold.
func Detect(scores []float32, confident float64) Detection {
	d := Detection{Boxes: len(scores)}
	if len(scores) == 0 {
		return d
	}
	d.Min = math.Inf(1)
	sum := 0.0
	for _, s := range scores {
		f := float64(s)
		sum += f
		d.Min = min(d.Min, f)
		d.Max = max(d.Max, f)
	}
	d.Mean = sum / float64(len(scores))
	d.NoConfidentBox = d.Max < confident
	d.Uncertainty = clamp01(1 - d.Mean)
	if d.NoConfidentBox {
		d.Uncertainty = clamp01(1 - d.Max)
	}
	return d
}

// Output is one arm's prediction on an image, for Disagreement.
type Output struct {
	PredictedClass string
	Classes        []string
	Probs          []float32
}

// Disagreement between two models' outputs on the same image: the total
// variation distance of their distributions when both have one (0 = equal,
// 1 = disjoint), else 1 when the predicted classes differ and 0 when not.
func Disagreement(a, b Output) float64 {
	if len(a.Probs) == 0 || len(b.Probs) == 0 || len(a.Classes) != len(a.Probs) || len(b.Classes) != len(b.Probs) {
		if a.PredictedClass != b.PredictedClass {
			return 1
		}
		return 0
	}
	pa := toMap(a)
	pb := toMap(b)
	keys := make([]string, 0, len(pa)+len(pb))
	for c := range pa {
		keys = append(keys, c)
	}
	for c := range pb {
		if _, ok := pa[c]; !ok {
			keys = append(keys, c)
		}
	}
	sort.Strings(keys) // deterministic float summation order
	tv := 0.0
	for _, c := range keys {
		tv += math.Abs(pa[c] - pb[c])
	}
	tv /= 2
	if a.PredictedClass != b.PredictedClass {
		// A flipped decision matters even when the distributions are close.
		tv = max(tv, 0.5)
	}
	return clamp01(tv)
}

func toMap(o Output) map[string]float64 {
	m := make(map[string]float64, len(o.Classes))
	for i, c := range o.Classes {
		m[c] += float64(o.Probs[i])
	}
	return m
}

// Subject identifies the image a Foreignness is asked about.
type Subject struct {
	EventID, Model, ModelVersion, Source string
	Embedding                            []float32
}

// Foreignness says how far an image is from the domain the model was
// checked on, in [0,1]. Implementations may use drift reports (a flagged
// source), drift explanations (events unlike the reference), distance to a
// reference sample, or anything else; the selector only weights the number.
type Foreignness interface {
	Foreignness(s Subject) float64
}

// DriftSignals is a Foreignness from the drift job's output: an event the
// drift explanations list as unlike the reference scores Event[id]; any other
// image of a scope (model, version, source) whose latest drift run was
// flagged scores Scope[scope].
type DriftSignals struct {
	Event map[string]float64
	Scope map[[3]string]float64
}

// Foreignness implements Foreignness.
func (d DriftSignals) Foreignness(s Subject) float64 {
	return clamp01(max(d.Event[s.EventID], d.Scope[[3]string{s.Model, s.ModelVersion, s.Source}]))
}

func clamp01(v float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return min(v, 1)
}
