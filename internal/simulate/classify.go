package simulate

import "math"

// classify simulates the classifier's output for a picture of class truth:
// the predicted class and a full softmax over Classes.
func (g *Generator) classify(truth int, shifted bool) (int, map[string]float64) {
	accuracy, conf := normalAccuracy, normalConfidence
	if shifted {
		accuracy, conf = shiftedAccuracy, shiftedConfidence
	}
	pred := truth
	if g.rng.Float64() >= accuracy {
		pred = g.wrongClass(truth, shifted)
	}
	top := conf[0] + (conf[1]-conf[0])*g.rng.Float64()
	return pred, probMap(g.softmax(pred, g.runnerUp(pred, truth, shifted), top))
}

// wrongClass picks a mistaken class. Under the shift most mistakes go to the
// few classes a dark, yellowish picture resembles, which is what makes the
// predicted-class mix drift visibly.
func (g *Generator) wrongClass(truth int, shifted bool) int {
	if shifted && g.rng.Float64() < biasedErrors {
		w := append([]float64(nil), g.confusion...)
		w[truth] = 0
		return pick(g.rng, cumulative(w))
	}
	k := g.rng.IntN(len(Classes) - 1)
	if k >= truth {
		k++
	}
	return k
}

// runnerUp is the class with the second-highest probability: the true class
// when the model is wrong (it half sees it), a confusable class under the
// shift, and any other class otherwise.
func (g *Generator) runnerUp(pred, truth int, shifted bool) int {
	switch {
	case pred != truth:
		return truth
	case shifted:
		w := append([]float64(nil), g.confusion...)
		w[pred] = 0
		return pick(g.rng, cumulative(w))
	default:
		k := g.rng.IntN(len(Classes) - 1)
		if k >= pred {
			k++
		}
		return k
	}
}

// softmax builds probabilities with top on pred, a third to two thirds of
// the rest on the runner-up and the remainder spread unevenly over the other
// classes. It guarantees pred stays the strict argmax.
func (g *Generator) softmax(pred, runner int, top float64) []float64 {
	v := make([]float64, len(Classes))
	rest := 1 - top
	v[runner] = min(rest*(0.35+0.35*g.rng.Float64()), 0.95*top)
	left := rest - v[runner]
	others := 0.0
	for i := range v {
		if i != pred && i != runner {
			v[i] = 0.2 + g.rng.ExpFloat64()
			others += v[i]
		}
	}
	for i := range v {
		if i != pred && i != runner {
			v[i] *= left / others
		}
	}
	v[pred] = top
	return keepArgmax(v, pred)
}

// keepArgmax shrinks the other classes if any rivals pred, giving the mass
// back to pred, so predicted_class always equals the argmax of probs.
func keepArgmax(v []float64, pred int) []float64 {
	m := 0.0
	for i, x := range v {
		if i != pred {
			m = max(m, x)
		}
	}
	if m < 0.95*v[pred] {
		return v
	}
	f := 0.9 * v[pred] / m
	v[pred] = 1
	for i := range v {
		if i != pred {
			v[i] *= f
			v[pred] -= v[i]
		}
	}
	return v
}

// probMap rounds to 6 decimals, as a float32 model server would print, and
// puts the rounding residue on the top class so the sum stays 1.
func probMap(v []float64) map[string]float64 {
	top := 0
	for i, x := range v {
		if x > v[top] {
			top = i
		}
	}
	m := make(map[string]float64, len(v))
	rest := 0.0
	for i, x := range v {
		if i != top {
			m[Classes[i]] = round6(x)
			rest += m[Classes[i]]
		}
	}
	m[Classes[top]] = round6(1 - rest)
	return m
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
