package drift

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkDriftPass times one full drift pass (every scope: ClickHouse
// aggregation and sampling, all tests, storing reports) over scopes of
// LOOKOUT_BENCH_EVENTS predictions and LOOKOUT_BENCH_EMBEDDINGS embeddings
// each (half in the reference minute, half in the current one), with
// LOOKOUT_BENCH_SCOPES scopes. The target is 10 scopes × 1M
// predictions × 20k embeddings in under 5 s.
func BenchmarkDriftPass(b *testing.B) {
	scopes := envInt("LOOKOUT_BENCH_SCOPES", 2)
	events := envInt("LOOKOUT_BENCH_EVENTS", 100000)
	embeds := envInt("LOOKOUT_BENCH_EMBEDDINGS", 4000)
	dim := envInt("LOOKOUT_BENCH_DIM", 384)
	conn, _ := testenv.ClickHouse(b)
	ctx := context.Background()
	syn := NewSynthetic(1)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for s := range scopes {
		sc := Scope{"bench", "v1", fmt.Sprintf("cam-%02d", s)}
		const chunk = 50000
		for off := 0; off < events; off += chunk {
			n := min(chunk, events-off)
			shift := 0.0
			if off >= events/2 {
				shift = 0.3
			}
			win := syn.Draw(rng, n, shift)
			preds, err := conn.PrepareBatch(ctx, `INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, task,
				image_uri, predicted_class, confidence, margin, entropy, prob_classes, prob_values, ingested_at)`)
			if err != nil {
				b.Fatal(err)
			}
			for i, row := range win.Rows {
				k := off + i
				// The first half of the events falls in the reference
				// minute, the second half in the current one.
				ts := t0.Add(time.Duration(k) * time.Minute / time.Duration(events/2))
				classes := slices.Sorted(mapKeys(row.Probs))
				probs := make([]float32, len(classes))
				for j, c := range classes {
					probs[j] = float32(row.Probs[c])
				}
				if err := preds.Append(fmt.Sprintf("%s-%d", sc, k), ts, uint64(ts.UnixMilli()), sc.Model, sc.Version, sc.Source,
					"classification", "", row.Class, float32(row.Confidence), float32(row.Margin), float32(row.Entropy),
					classes, probs, ts); err != nil {
					b.Fatal(err)
				}
			}
			if err := preds.Send(); err != nil {
				b.Fatal(err)
			}
		}
		embBatch, err := conn.PrepareBatch(ctx, `INSERT INTO embeddings (event_id, ts, ts_ms, model, model_version, source,
			predicted_class, confidence, embedder, sample_weight, embedding, embedded_at)`)
		if err != nil {
			b.Fatal(err)
		}
		for k := range embeds {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(rng.NormFloat64())
			}
			ts := t0.Add(time.Duration(k) * time.Minute / time.Duration(embeds/2))
			if err := embBatch.Append(fmt.Sprintf("%s-e%d", sc, k), ts, uint64(ts.UnixMilli()), sc.Model, sc.Version, sc.Source,
				"class-00", float32(0.9), "bench", float32(1), v, ts); err != nil {
				b.Fatal(err)
			}
		}
		if err := embBatch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	// Measure the steady state: background merges of the fresh parts would
	// otherwise compete with the pass for the two cores.
	for _, table := range []string{"predictions", "embeddings"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d scopes × %d predictions + %d embeddings (%d-d) in %s", scopes, events, embeds, dim, time.Since(start).Round(time.Millisecond))
	cfg := jobConfig()
	cfg.MaxSamples = envInt("LOOKOUT_BENCH_MAX_SAMPLES", config.Default().Drift.MaxSamples)
	cfg.Permutations = 500
	for _, workers := range []int{1, scopeWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			job := NewJob(conn, cfg, nil, testenv.Logger(b))
			job.workers = workers
			for b.Loop() {
				runs, err := job.RunScopes(ctx, t0.Add(2*time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				if len(runs) != scopes {
					b.Fatalf("%d scopes evaluated", len(runs))
				}
			}
		})
	}
}
