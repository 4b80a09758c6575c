package drift

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestEmbeddingSubsampleUndoesSamplingWeights stores 200 embeddings of kind
// A with weight 1 and 200 of kind B with weight 9 (B was embedded 9 times less
// often, so each B row stands for 9 events). A subsample of 100 must then be
// ≈ 90 % B, as the traffic was — not the 50 % of the stored rows.
func TestEmbeddingSubsampleUndoesSamplingWeights(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO embeddings (event_id, ts, ts_ms, model, model_version, source,
		predicted_class, confidence, embedder, sample_weight, embedding, embedded_at)`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		kind, weight, v := "A", float32(1), []float32{1, 0}
		if i%2 == 1 {
			kind, weight, v = "B", 9, []float32{0, 1}
		}
		id := fmt.Sprintf("%s-%03d", kind, i)
		if err := batch.Append(id, ts, uint64(ts.UnixMilli()), "m", "v", "s", "c", float32(0.9), "e", weight, v, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	out := []*Sample{{}}
	one := sides{{Scope{Model: "m", Version: "v", Source: "s"}, Window{From: ts.Add(-time.Minute), To: ts.Add(time.Minute)}}}
	if err := embeddings(ctx, conn, one, "e", out, 100); err != nil {
		t.Fatal(err)
	}
	ids := out[0].EmbeddingIDs
	b := 0
	for _, id := range ids {
		if id[0] == 'B' {
			b++
		}
	}
	// Weighted sampling without replacement of 100 from 200×w9 + 200×w1:
	// ≈ 90 B; 75 is far outside the noise and far above the unweighted 50.
	if len(ids) != 100 || b < 75 {
		t.Fatalf("subsample has %d ids, %d of kind B; want 100 with ≈ 90 B", len(ids), b)
	}
}
