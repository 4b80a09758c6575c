package activelearning

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/activelearning/score"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// BenchmarkSelectorRun200k times one whole selection run against the real
// ClickHouse: 200,000 candidate predictions (12 classes, 3 sources) with
// 384-d embeddings, 1,000 picks, 1,000 already-labelled seeds. Setting up the
// data takes about a minute and is not timed.
//
//	go test -run XXX -bench SelectorRun200k -benchtime 3x ./activelearning
func BenchmarkSelectorRun200k(b *testing.B) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(b)
	now := time.Now().UTC()
	r := rand.New(rand.NewPCG(5, 5))
	const n, dim = 200_000, 384
	for lo := 0; lo < n; lo += 20_000 {
		pb, err := conn.PrepareBatch(ctx, "INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, task, image_uri, predicted_class, class_set, prob_values, arm, ingested_at)")
		if err != nil {
			b.Fatal(err)
		}
		eb, err := conn.PrepareBatch(ctx, "INSERT INTO embeddings (event_id, ts, ts_ms, model, model_version, source, predicted_class, confidence, embedder, sample_weight, embedding, embedded_at)")
		if err != nil {
			b.Fatal(err)
		}
		for i := lo; i < lo+20_000; i++ {
			id := fmt.Sprintf("e%06d", i)
			ts := now.Add(-time.Duration(r.IntN(20*3600)) * time.Second)
			top := 0.3 + 0.7*r.Float64()
			classes := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
			probs := make([]float32, 12)
			k := r.IntN(12)
			for c := range probs {
				probs[c] = float32((1 - top) / 11)
			}
			probs[k] = float32(top)
			src := fmt.Sprint("cam-", i%3)
			if err := pb.Append(id, ts, uint64(ts.UnixMilli()), "m", "v1", src, "classification",
				"file:///img/"+id+".jpg", classes[k], strings.Join(classes, ","), probs, "stable", now); err != nil {
				b.Fatal(err)
			}
			if err := eb.Append(id, ts, uint64(ts.UnixMilli()), "m", "v1", src, classes[k], float32(top), testEmbedder,
				float32(1), unitVec(r, dim), now); err != nil {
				b.Fatal(err)
			}
		}
		if err := pb.Send(); err != nil {
			b.Fatal(err)
		}
		if err := eb.Send(); err != nil {
			b.Fatal(err)
		}
	}
	// 1,000 labelled items seed the diversity step.
	lb, _ := conn.PrepareBatch(ctx, "INSERT INTO labels (event_id, label, annotator, ts, ts_ms, ingested_at)")
	for i := range 1000 {
		_ = lb.Append(fmt.Sprintf("e%06d", i*150), "a", "x", now, uint64(now.UnixMilli()), now)
	}
	if err := lb.Send(); err != nil {
		b.Fatal(err)
	}
	opts := testOptions()
	opts.Window, opts.RunSize, opts.DailyBudget, opts.MaxCandidates, opts.PoolFactor = 24*time.Hour, 1000, 1_000_000, 200_000, 10
	opts.ClassQuota, opts.SourceQuota, opts.MaxSeeds = 0.3, 0.5, 5000
	s := NewSelector(conn, opts, testenv.Logger(b), nil)
	s.Foreignness = score.DriftSignals{}
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Run(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Picks) != 1000 || res.Candidates != n-1000 {
			b.Fatalf("picked %d of %d candidates", len(res.Picks), res.Candidates)
		}
	}
}
