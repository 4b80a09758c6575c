package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// naiveUnusual is the plain nearest-reference search unusualEvents must
// agree with.
func naiveUnusual(ref, cur [][]float32) []float64 {
	out := make([]float64, len(cur))
	for i, y := range cur {
		best := math.Inf(1)
		for _, x := range ref {
			var s float64
			for j := range y {
				d := float64(y[j]) - float64(x[j])
				s += d * d
			}
			best = min(best, s)
		}
		out[i] = math.Sqrt(best)
	}
	return out
}

func randomSample(rng *rand.Rand, n, dim int, shift float32) *Sample {
	s := &Sample{}
	for i := range n {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64()) + shift
		}
		s.Embeddings = append(s.Embeddings, v)
		s.EmbeddingIDs = append(s.EmbeddingIDs, fmt.Sprintf("e%03d", i))
	}
	return s
}

func TestUnusualEventsMatchesNaiveSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ref, cur := randomSample(rng, 120, 37, 0), randomSample(rng, 90, 37, 0.2)
	want := naiveUnusual(ref.Embeddings, cur.Embeddings)
	sorted := append([]float64(nil), want...)
	sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
	got := unusualEvents(ref, cur)
	if len(got) != maxExplain {
		t.Fatalf("%d explanations, want %d", len(got), maxExplain)
	}
	for k, e := range got {
		var i int
		fmt.Sscanf(e.Item, "e%03d", &i)
		if math.Abs(e.Value-want[i]) > 1e-9 || math.Abs(e.Value-sorted[k]) > 1e-9 {
			t.Errorf("rank %d: %s at %.12f, naive %.12f (rank value %.12f)", k, e.Item, e.Value, want[i], sorted[k])
		}
	}
}

// BenchmarkUnusualEvents is the job's default: 300 + 300 samples, 384-d.
func BenchmarkUnusualEvents(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref, cur := randomSample(rng, 300, 384, 0), randomSample(rng, 300, 384, 0.1)
	b.Run("naive", func(b *testing.B) {
		for b.Loop() {
			naiveUnusual(ref.Embeddings, cur.Embeddings)
		}
	})
	b.Run("job", func(b *testing.B) {
		for b.Loop() {
			unusualEvents(ref, cur)
		}
	})
}
