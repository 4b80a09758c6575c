package selection

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// unit returns a random unit vector of dimension d.
func unit(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	var n float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

// jitter returns v moved by a small random step and renormalised: a
// near-duplicate of v.
func jitter(r *rand.Rand, v []float32, eps float64) []float32 {
	out := make([]float32, len(v))
	var n float64
	for i := range v {
		out[i] = v[i] + float32(eps*r.NormFloat64()/math.Sqrt(float64(len(v))))
		n += float64(out[i]) * float64(out[i])
	}
	for i := range out {
		out[i] /= float32(math.Sqrt(n))
	}
	return out
}

func TestNoNearDuplicatesPicked(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var cands []Candidate
	// 20 distinct scenes, each with 10 near-identical frames; the most
	// uncertain frames are all copies of scene 0.
	for s := range 20 {
		base := unit(r, 64)
		for f := range 10 {
			score := 0.5 + 0.01*float64(f)
			if s == 0 {
				score = 0.99
			}
			cands = append(cands, Candidate{EventID: fmt.Sprintf("s%d-f%d", s, f), Class: "c", Source: "cam",
				Score: score, Embedding: jitter(r, base, 0.05)})
		}
	}
	picks := Select(cands, nil, Options{Budget: 15, PoolFactor: 100, DuplicateDistance: 0.05})
	if len(picks) != 15 {
		t.Fatalf("picked %d, want 15", len(picks))
	}
	assertNoDuplicates(t, cands, picks, nil, 0.05)
	if cands[picks[0].Index].EventID[:3] != "s0-" {
		t.Errorf("first pick %s, want the most uncertain scene s0", cands[picks[0].Index].EventID)
	}
}

func assertNoDuplicates(t *testing.T, cands []Candidate, picks []Pick, seeds [][]float32, dup float64) {
	t.Helper()
	scene := map[string]bool{}
	for i, a := range picks {
		id := cands[a.Index].EventID
		sc := id[:len(id)-3]
		if scene[sc] {
			t.Errorf("scene %s picked twice", sc)
		}
		scene[sc] = true
		for _, b := range picks[:i] {
			if d := SqDist(cands[a.Index].Embedding, cands[b.Index].Embedding); d < dup {
				t.Errorf("%s and %s are near-duplicates (d=%v)", id, cands[b.Index].EventID, d)
			}
		}
		for _, s := range seeds {
			if d := SqDist(cands[a.Index].Embedding, s); d < dup {
				t.Errorf("%s duplicates a seed (d=%v)", id, d)
			}
		}
	}
}

func TestSeedsExcludeAlreadyQueued(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var cands []Candidate
	var seeds [][]float32
	for s := range 10 {
		base := unit(r, 32)
		if s < 5 {
			seeds = append(seeds, base) // scenes 0-4 already labelled
		}
		for f := range 3 {
			cands = append(cands, Candidate{EventID: fmt.Sprintf("s%d-f%d", s, f), Class: "c", Source: "cam",
				Score: 1 - 0.05*float64(s), Embedding: jitter(r, base, 0.05)})
		}
	}
	picks := Select(cands, seeds, Options{Budget: 10, DuplicateDistance: 0.05})
	if len(picks) != 5 {
		t.Fatalf("picked %d, want the 5 unseen scenes", len(picks))
	}
	assertNoDuplicates(t, cands, picks, seeds, 0.05)
}

func TestQuotas(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var cands []Candidate
	classes := []string{"dent", "scratch", "ok"}
	sources := []string{"cam-1", "cam-2"}
	for i := range 600 {
		// dent on cam-1 is by far the most uncertain: without quotas it
		// would take the whole budget.
		c, s := classes[i%3], sources[(i/3)%2]
		score := 0.1 + 0.1*r.Float64()
		if c == "dent" && s == "cam-1" {
			score += 0.8
		}
		cands = append(cands, Candidate{EventID: fmt.Sprint(i), Class: c, Source: s, Score: score, Embedding: unit(r, 16)})
	}
	picks := Select(cands, nil, Options{Budget: 40, PoolFactor: 20, ClassQuota: 0.5, SourceQuota: 0.6})
	if len(picks) != 40 {
		t.Fatalf("picked %d, want 40", len(picks))
	}
	byClass, bySource := map[string]int{}, map[string]int{}
	for _, p := range picks {
		byClass[cands[p.Index].Class]++
		bySource[cands[p.Index].Source]++
	}
	for c, n := range byClass {
		if n > 20 {
			t.Errorf("class %s took %d of 40, quota 20", c, n)
		}
	}
	for s, n := range bySource {
		if n > 24 {
			t.Errorf("source %s took %d of 40, quota 24", s, n)
		}
	}
	if byClass["dent"] != 20 {
		t.Errorf("dent got %d, want its full quota of 20 (it is the most uncertain)", byClass["dent"])
	}
}

// eager is the textbook greedy: recompute every item's distance to its
// nearest center and take the argmax each step. The lazy Select must agree.
func eager(cands []Candidate, seeds [][]float32, budget, factor int, dup float64) []int {
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(cands[b].Score, cands[a].Score); c != 0 {
			return c
		}
		return cmp.Compare(cands[a].EventID, cands[b].EventID)
	})
	pool := order[:min(len(order), factor*budget)]
	centers := slices.Clone(seeds)
	taken := map[int]bool{}
	var out []int
	for len(out) < budget {
		best, bestV := -1, -1.0
		for _, ci := range pool {
			if taken[ci] {
				continue
			}
			d := nearest(cands[ci].Embedding, centers)
			if d < dup {
				continue
			}
			if v := cands[ci].Score * min(d, noveltyCap); v > bestV {
				best, bestV = ci, v
			}
		}
		if best < 0 {
			break
		}
		taken[best] = true
		out = append(out, best)
		centers = append(centers, cands[best].Embedding)
	}
	return out
}

func TestLazyGreedyEqualsEager(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var cands []Candidate
	var bases [][]float32
	for range 40 {
		bases = append(bases, unit(r, 24))
	}
	for i := range 2000 {
		// Clustered data, so distances fall below the novelty cap and the
		// lazy bounds really go stale.
		v := jitter(r, bases[r.IntN(len(bases))], 0.6+0.6*r.Float64())
		cands = append(cands, Candidate{EventID: fmt.Sprint(i), Class: "c", Source: "s", Score: r.Float64(), Embedding: v})
	}
	seeds := [][]float32{bases[0], bases[1]}
	for _, workers := range []int{1, 4} {
		got := Select(cands, seeds, Options{Budget: 100, PoolFactor: 5, DuplicateDistance: 0.02, Workers: workers})
		want := eager(cands, seeds, 100, 5, 0.02)
		if len(got) != len(want) {
			t.Fatalf("workers=%d: lazy picked %d, eager %d", workers, len(got), len(want))
		}
		for i := range got {
			if got[i].Index != want[i] {
				t.Fatalf("workers=%d: pick %d: lazy %d, eager %d", workers, i, got[i].Index, want[i])
			}
		}
	}
}
