package drift

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
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
// each (half in the reference minute, half in the current one; one event
// in 200 labelled), with LOOKOUT_BENCH_SCOPES scopes. The target is 10 scopes × 1M
// predictions × 20k embeddings in under 5 s. workers=N is the pass of a
// running job; first-pass/workers=N the first pass of a new job, which also
// lists the scopes with a full scan.
//
// Loading 10M predictions takes minutes: LOOKOUT_BENCH_DB=name keeps the
// data in that database (not dropped) and reuses it when it already holds
// the requested number of predictions, so the queries can be iterated on
// and timed with clickhouse-client against the same data.
// LOOKOUT_BENCH_UNMERGED=1 skips the final OPTIMIZE, so the windows span
// several parts like fresh data (use its own LOOKOUT_BENCH_DB).
func BenchmarkDriftPass(b *testing.B) {
	scopes := envInt("LOOKOUT_BENCH_SCOPES", 2)
	events := envInt("LOOKOUT_BENCH_EVENTS", 100000)
	embeds := envInt("LOOKOUT_BENCH_EMBEDDINGS", 4000)
	dim := envInt("LOOKOUT_BENCH_DIM", 384)
	ctx := context.Background()
	if os.Getenv("LOOKOUT_BENCH_QUERY_LOG") != "" {
		// Every query of the pass lands in system.query_log with its
		// duration and CPU time (scripts: see BENCHMARKS.md, Drift).
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	}
	conn := benchConn(b)
	if n := countRows(b, conn, "predictions"); n == uint64(scopes*events) {
		b.Logf("reusing %d predictions in database %s", n, os.Getenv("LOOKOUT_BENCH_DB"))
	} else {
		loadBench(b, conn, scopes, events, embeds, dim)
	}
	cfg := jobConfig()
	cfg.MaxSamples = envInt("LOOKOUT_BENCH_MAX_SAMPLES", config.Default().Drift.MaxSamples)
	cfg.Permutations = 500
	workers := []int{1, scopeWorkers}
	if w := envInt("LOOKOUT_BENCH_WORKERS", 0); w > 0 {
		workers = []int{w}
	}
	now := t0.Add(2 * time.Minute)
	log := testenv.Logger(b)
	if path := os.Getenv("LOOKOUT_BENCH_LOG"); path != "" {
		// Debug log with every query's duration, to see where a pass goes.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	pass := func(b *testing.B, job *Job) {
		runs, err := job.RunScopes(ctx, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) != scopes {
			b.Fatalf("%d scopes evaluated", len(runs))
		}
	}
	for _, w := range workers {
		// A running job: it has listed the scopes in an earlier pass.
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			job := NewJob(conn, cfg, nil, log)
			job.workers = w
			pass(b, job)
			for b.Loop() {
				pass(b, job)
			}
		})
		// The first pass of a job (after a start or a change of leader),
		// which also scans the table for scopes and their first prediction.
		b.Run(fmt.Sprintf("first-pass/workers=%d", w), func(b *testing.B) {
			for b.Loop() {
				job := NewJob(conn, cfg, nil, log)
				job.workers = w
				pass(b, job)
			}
		})
	}
}

// benchConn opens the benchmark's database: a fresh one dropped at the end,
// or the one LOOKOUT_BENCH_DB names, kept.
func benchConn(b *testing.B) driver.Conn {
	name := os.Getenv("LOOKOUT_BENCH_DB")
	if name == "" {
		conn, _ := testenv.ClickHouse(b)
		return conn
	}
	cfg := testenv.ClickHouseConfig(b)
	cfg.Database = name
	conn, err := store.OpenMigrated(context.Background(), cfg, testenv.Logger(b))
	if err != nil {
		b.Fatalf("ClickHouse database %s: %v (run `make setup` to start the local server)", name, err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

func countRows(b *testing.B, conn driver.Conn, table string) uint64 {
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// loadBench fills the predictions and embeddings of every scope, the way
// ingest writes them (the class list as class_set), then merges the parts.
func loadBench(b *testing.B, conn driver.Conn, scopes, events, embeds, dim int) {
	ctx := context.Background()
	for _, table := range []string{"predictions", "embeddings", "labels"} {
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+table); err != nil {
			b.Fatal(err)
		}
	}
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
				image_uri, predicted_class, confidence, margin, entropy, class_set, prob_values, ingested_at)`)
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
					strings.Join(classes, ","), probs, ts); err != nil {
					b.Fatal(err)
				}
			}
			if err := preds.Send(); err != nil {
				b.Fatal(err)
			}
			// One event in 200 gets a label, a few seconds after it.
			labels, err := conn.PrepareBatch(ctx, `INSERT INTO labels (event_id, label, annotator, ts, ts_ms, ingested_at)`)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i += 200 {
				k := off + i
				ts := t0.Add(time.Duration(k)*time.Minute/time.Duration(events/2) + 5*time.Second)
				if err := labels.Append(fmt.Sprintf("%s-%d", sc, k), win.truth[i], "bench", ts, uint64(ts.UnixMilli()), ts); err != nil {
					b.Fatal(err)
				}
			}
			if err := labels.Send(); err != nil {
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
	if os.Getenv("LOOKOUT_BENCH_UNMERGED") != "" {
		// Leave the parts as inserted (background merges go on): the
		// windows span many parts, as fresh data does in production, and
		// class counts take the distinct-count path.
		b.Logf("loaded %d scopes × %d predictions + %d embeddings (%d-d) in %s, not merged", scopes, events, embeds, dim, time.Since(start).Round(time.Millisecond))
		return
	}
	// Measure the steady state: background merges of the fresh parts would
	// otherwise compete with the pass for the two cores.
	for _, table := range []string{"predictions", "embeddings", "labels"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d scopes × %d predictions + %d embeddings (%d-d) in %s", scopes, events, embeds, dim, time.Since(start).Round(time.Millisecond))
}
