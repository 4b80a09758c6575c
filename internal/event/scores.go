package event

import (
	"iter"
	"math"
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

func probScores(probs Probs) Scores {
	return scoresOf(func(yield func(string, float64) bool) {
		for _, e := range probs {
			if !yield(e.Class, e.Score) {
				return
			}
		}
	})
}

// scoresOf summarises a distribution visited in any order.
func scoresOf(probs iter.Seq2[string, float64]) Scores {
	var s Scores
	second := 0.0
	for c, v := range probs {
		// Ties go to the smaller class name so the order never matters.
		if s.TopClass == "" || v > s.Confidence || (v == s.Confidence && c < s.TopClass) {
			if s.TopClass != "" {
				second = max(second, s.Confidence)
			}
			s.TopClass, s.Confidence = c, v
		} else if v > second {
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
