package selection

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSelect1000of200k is the target: 1,000 picks from 200,000
// candidates with 384-d embeddings (and 1,000 seeds already labelled).
func BenchmarkSelect1000of200k(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	cands := make([]Candidate, 200_000)
	for i := range cands {
		cands[i] = Candidate{EventID: fmt.Sprint(i), Class: fmt.Sprint("c", i%12), Source: fmt.Sprint("cam-", i%3),
			Score: r.Float64(), Embedding: unit(r, 384)}
	}
	seeds := make([][]float32, 1000)
	for i := range seeds {
		seeds[i] = unit(r, 384)
	}
	opts := Options{Budget: 1000, PoolFactor: 10, DuplicateDistance: 0.05, ClassQuota: 0.3, SourceQuota: 0.5}
	b.ResetTimer()
	for b.Loop() {
		if got := len(Select(cands, seeds, opts)); got != 1000 {
			b.Fatalf("picked %d", got)
		}
	}
}

// BenchmarkSelect1000of200kClustered is the harder case for the lazy greedy:
// 200,000 frames of 2,000 scenes (near-duplicates within a scene, distances
// below the novelty cap), so bounds go stale and many items are re-checked.
func BenchmarkSelect1000of200kClustered(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	scenes := make([][]float32, 2000)
	for i := range scenes {
		scenes[i] = unit(r, 384)
	}
	cands := make([]Candidate, 200_000)
	for i := range cands {
		cands[i] = Candidate{EventID: fmt.Sprint(i), Class: fmt.Sprint("c", i%12), Source: fmt.Sprint("cam-", i%3),
			Score: r.Float64(), Embedding: jitter(r, scenes[r.IntN(len(scenes))], 0.3+r.Float64())}
	}
	seeds := scenes[:1000]
	opts := Options{Budget: 1000, PoolFactor: 10, DuplicateDistance: 0.05, ClassQuota: 0.3, SourceQuota: 0.5}
	b.ResetTimer()
	for b.Loop() {
		Select(cands, seeds, opts)
	}
}
