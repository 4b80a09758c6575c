// Package valuebench measures what active learning is worth: it simulates
// the labelling loop on a pool of embeddings with known classes and compares
// the accuracy a simple classifier (distance-weighted kNN on the embeddings)
// reaches per label budget when the labelled items are chosen at random, by
// uncertainty alone, or by uncertainty plus embedding diversity (the
// production selection, activelearning/selection).
//
// The pool imitates a production stream: classes made of several Gaussian
// modes on the unit sphere, a few rare classes, and bursts of near-identical
// frames around class boundaries (the "twenty copies of the same blurry
// frame" that uncertainty alone keeps picking).
package valuebench

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/lookout-dev/lookout/activelearning/score"
	"github.com/lookout-dev/lookout/activelearning/selection"
)

// Config sizes one simulation.
type Config struct {
	Classes, ModesPerClass, Dim int
	Pool, Test                  int
	// Bursts near-duplicate groups of BurstSize frames each join the pool.
	Bursts, BurstSize int
	// Spread is the within-mode noise (on unit vectors).
	Spread float64
	// Start items are labelled at random first; then Batch per round until
	// Budget.
	Start, Batch, Budget int
	K                    int // neighbours of the kNN classifier
	Seed                 uint64
}

// DefaultConfig is the configuration BENCHMARKS.md reports.
func DefaultConfig() Config {
	return Config{Classes: 12, ModesPerClass: 3, Dim: 32, Pool: 3000, Test: 1500, Bursts: 24, BurstSize: 25,
		Spread: 1.0, Start: 24, Batch: 12, Budget: 360, K: 7, Seed: 1}
}

// Strategy names.
const (
	Random      = "random"
	Uncertainty = "uncertainty"
	Diverse     = "uncertainty+diversity"
)

// Strategies lists the compared strategies.
var Strategies = []string{Random, Uncertainty, Diverse}

// Curve is the test accuracy after each round: Budget[i] labels → Accuracy[i].
type Curve struct {
	Budget   []int
	Accuracy []float64
}

type dataset struct {
	x     [][]float32
	y     []int
	testX [][]float32
	testY []int
	k     int
}

// Run simulates every strategy on the same pool.
func Run(c Config) map[string]Curve {
	d := generate(c)
	out := map[string]Curve{}
	for si, s := range Strategies {
		r := rand.New(rand.NewPCG(c.Seed, uint64(si)+100))
		out[s] = loop(c, d, s, r)
	}
	return out
}

func generate(c Config) dataset {
	r := rand.New(rand.NewPCG(c.Seed, 7))
	modes := make([][][]float32, c.Classes)
	for k := range modes {
		for range c.ModesPerClass {
			modes[k] = append(modes[k], unit(r, c.Dim))
		}
	}
	// Rare classes: the last quarter appear 4× less often.
	weights := make([]float64, c.Classes)
	for k := range weights {
		weights[k] = 1
		if k >= c.Classes*3/4 {
			weights[k] = 0.25
		}
	}
	draw := func() ([]float32, int) {
		k := pick(r, weights)
		m := modes[k][r.IntN(len(modes[k]))]
		return jitter(r, m, c.Spread), k
	}
	d := dataset{k: c.Classes}
	for range c.Pool {
		v, k := draw()
		d.x, d.y = append(d.x, v), append(d.y, k)
	}
	for range c.Test {
		v, k := draw()
		d.testX, d.testY = append(d.testX, v), append(d.testY, k)
	}
	for range c.Bursts {
		// A frame between two classes' modes, repeated with tiny changes.
		a, b := r.IntN(c.Classes), r.IntN(c.Classes)
		ma, mb := modes[a][r.IntN(c.ModesPerClass)], modes[b][r.IntN(c.ModesPerClass)]
		mid := make([]float32, c.Dim)
		for i := range mid {
			mid[i] = ma[i] + mb[i]
		}
		base := jitter(r, mid, 0.05)
		for range c.BurstSize {
			d.x, d.y = append(d.x, jitter(r, base, 0.02)), append(d.y, a)
		}
	}
	return d
}

func loop(c Config, d dataset, strategy string, r *rand.Rand) Curve {
	labelled := map[int]bool{}
	for _, i := range r.Perm(len(d.x))[:c.Start] {
		labelled[i] = true
	}
	var curve Curve
	for {
		curve.Budget = append(curve.Budget, len(labelled))
		curve.Accuracy = append(curve.Accuracy, accuracy(d, labelled, c.K))
		if len(labelled) >= c.Budget {
			return curve
		}
		for _, i := range choose(c, d, labelled, strategy, r) {
			labelled[i] = true
		}
	}
}

func choose(c Config, d dataset, labelled map[int]bool, strategy string, r *rand.Rand) []int {
	var free []int
	for i := range d.x {
		if !labelled[i] {
			free = append(free, i)
		}
	}
	n := min(c.Batch, c.Budget-len(labelled))
	if strategy == Random {
		r.Shuffle(len(free), func(a, b int) { free[a], free[b] = free[b], free[a] })
		return free[:n]
	}
	lx, ly := labelledSet(d, labelled)
	ent := make([]float64, len(free))
	for j, i := range free {
		ent[j] = score.Classify(knnProbs(d.x[i], lx, ly, d.k, c.K), d.k).Entropy
	}
	if strategy == Uncertainty {
		order := make([]int, len(free))
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case ent[a] > ent[b]:
				return -1
			case ent[a] < ent[b]:
				return 1
			}
			return 0
		})
		out := make([]int, n)
		for j := range out {
			out[j] = free[order[j]]
		}
		return out
	}
	cands := make([]selection.Candidate, len(free))
	for j, i := range free {
		cands[j] = selection.Candidate{EventID: strconv.Itoa(i), Score: ent[j], Embedding: d.x[i]}
	}
	picks := selection.Select(cands, lx, selection.Options{Budget: n, PoolFactor: 10, DuplicateDistance: 0.02, Workers: 1})
	out := make([]int, len(picks))
	for j, p := range picks {
		out[j] = free[p.Index]
	}
	return out
}

func labelledSet(d dataset, labelled map[int]bool) ([][]float32, []int) {
	var lx [][]float32
	var ly []int
	for i := range d.x {
		if labelled[i] {
			lx, ly = append(lx, d.x[i]), append(ly, d.y[i])
		}
	}
	return lx, ly
}

// knnProbs is a distance-weighted kNN class distribution, smoothed so it is
// never one-hot (a softmax-like output for the uncertainty scores).
func knnProbs(v []float32, lx [][]float32, ly []int, classes, k int) []float32 {
	type nb struct {
		d float64
		y int
	}
	best := make([]nb, 0, k+1)
	for i, x := range lx {
		dd := selection.SqDist(v, x)
		if len(best) < k || dd < best[len(best)-1].d {
			best = append(best, nb{dd, ly[i]})
			slices.SortFunc(best, func(a, b nb) int {
				if a.d < b.d {
					return -1
				}
				if a.d > b.d {
					return 1
				}
				return 0
			})
			if len(best) > k {
				best = best[:k]
			}
		}
	}
	p := make([]float32, classes)
	total := float32(0)
	for c := range p {
		p[c] = 0.02
		total += 0.02
	}
	for _, b := range best {
		w := float32(math.Exp(-b.d / 0.2))
		p[b.y] += w
		total += w
	}
	for c := range p {
		p[c] /= total
	}
	return p
}

func accuracy(d dataset, labelled map[int]bool, k int) float64 {
	lx, ly := labelledSet(d, labelled)
	ok := 0
	for i, v := range d.testX {
		p := knnProbs(v, lx, ly, d.k, k)
		if argmax(p) == d.testY[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(d.testX))
}

// BudgetFor returns the smallest budget at which curve reaches acc
// (interpolated linearly between rounds), or -1 if it never does.
func BudgetFor(curve Curve, acc float64) float64 {
	for i, a := range curve.Accuracy {
		if a >= acc {
			if i == 0 {
				return float64(curve.Budget[0])
			}
			a0, b0 := curve.Accuracy[i-1], float64(curve.Budget[i-1])
			return b0 + (acc-a0)/(a-a0)*(float64(curve.Budget[i])-b0)
		}
	}
	return -1
}

func argmax(p []float32) int {
	b := 0
	for i := range p {
		if p[i] > p[b] {
			b = i
		}
	}
	return b
}

func pick(r *rand.Rand, w []float64) int {
	total := 0.0
	for _, v := range w {
		total += v
	}
	x := r.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func unit(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return normalize(v)
}

func jitter(r *rand.Rand, v []float32, eps float64) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] + float32(eps*r.NormFloat64()/math.Sqrt(float64(len(v))))
	}
	return normalize(out)
}

func normalize(v []float32) []float32 {
	n := 0.0
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	s := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= s
	}
	return v
}
