package event

import (
	"math"
	"sort"
)

// Scores summarises how sure a prediction is. Drift tests and the active-
// learning queue read these instead of re-deriving them from raw outputs.
type Scores struct {
	// TopClass is the most probable class (the best box's class for detection).
	TopClass string
	// Confidence is the top probability, or the best box score.
	Confidence float64
	// Margin is top-1 minus top-2 probability (the runner-up counts as 0 when
	// absent; 1 for detections, which have no runner-up notion).
	Margin float64
	// Entropy is the Shannon entropy of probs in nats (0 without full probs).
	Entropy float64
}

// Scores derives the uncertainty summary of p.
func (p *Prediction) Scores() Scores {
	switch {
	case len(p.Probs) > 0:
		return probScores(p.Probs)
	case len(p.TopK) > 0:
		return topKScores(p.TopK)
	default:
		return boxScores(p.Boxes)
	}
}

func probScores(probs map[string]float64) Scores {
	classes := make([]string, 0, len(probs))
	for c := range probs {
		classes = append(classes, c)
	}
	// Sorted first so ties resolve the same way on every run.
	sort.Strings(classes)
	var s Scores
	second := 0.0
	for _, c := range classes {
		v := probs[c]
		switch {
		case v > s.Confidence || s.TopClass == "":
			second = s.Confidence
			s.TopClass, s.Confidence = c, v
		case v > second:
			second = v
		}
		if v > 0 {
			s.Entropy -= v * math.Log(v)
		}
	}
	s.Margin = s.Confidence - second
	return s
}

func topKScores(top []ClassScore) Scores {
	var s Scores
	second := 0.0
	for _, cs := range top {
		switch {
		case cs.Score > s.Confidence || s.TopClass == "":
			second = s.Confidence
			s.TopClass, s.Confidence = cs.Class, cs.Score
		case cs.Score > second:
			second = cs.Score
		}
	}
	s.Margin = s.Confidence - second
	return s
}

func boxScores(boxes []Box) Scores {
	var s Scores
	for _, b := range boxes {
		if b.Score > s.Confidence || s.TopClass == "" {
			s.TopClass, s.Confidence = b.Class, b.Score
		}
	}
	s.Margin = 1
	return s
}
