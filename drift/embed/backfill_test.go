package embed

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestBackfillEmbedsMissingOnceAndFilters stores 30 predictions (two
// sources, one day), with one event already embedded and one image
// missing, then backfills a source and a time range on real ClickHouse and
// ONNX Runtime: only the missing embeddings of that selection are made, a
// rerun makes none, and another source can follow.
func TestBackfillEmbedsMissingOnceAndFilters(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	root := t.TempDir()
	for i := range 3 {
		writePNG(t, filepath.Join(root, fmt.Sprintf("img%d.png", i)), scene(160, 120, uint64(i)))
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := conn.PrepareBatch(ctx, `INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, task,
		image_uri, predicted_class, confidence, margin, entropy, class_set, prob_values, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		src := []string{"cam-a", "cam-b"}[i%2]
		uri := "file://" + filepath.Join(root, fmt.Sprintf("img%d.png", i%3))
		if i == 4 {
			uri = "file://" + filepath.Join(root, "gone.png")
		}
		if err := b.Append(fmt.Sprintf("ev-%02d", i), ts, uint64(ts.UnixMilli()), "m", "v1", src, "classification",
			uri, "ok", float32(0.8), float32(0.6), float32(0.5), "dent,ok", []float32{0.2, 0.8}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	model := openTiny(t)
	stage := NewStage(model, FileFetcher{Root: root}, conn, StageOptions{Workers: 2}, nil)
	// ev-00 (cam-a) is already embedded by this model.
	if err := stage.Store(ctx, []Item{{Prediction: predAt("ev-00", "cam-a", t0, "file://"+filepath.Join(root, "img0.png"))}}); err != nil {
		t.Fatal(err)
	}
	opts := BackfillOptions{Since: t0, Until: t0.Add(20 * time.Minute), Sources: []string{"cam-a"}, Page: 4}
	var reports int
	res, err := Backfill(ctx, stage, conn, opts, func(BackfillProgress) { reports++ })
	if err != nil {
		t.Fatal(err)
	}
	// cam-a in [0, 20) min: ev-00 … ev-18 even = 10 events; ev-00 done, ev-04 has no image.
	if res.Total != 9 || res.Seen != 9 || res.Embedded != 8 || res.Failed != 1 || res.Unsampled != 0 || reports == 0 {
		t.Fatalf("first run: %+v (reports %d), want total 9, seen 9, embedded 8, failed 1", res, reports)
	}
	if n := testenv.Count(t, conn, "SELECT uniqExact(event_id) FROM embeddings WHERE source = 'cam-a'"); n != 9 {
		t.Fatalf("%d cam-a embeddings, want 9", n)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM embeddings WHERE source = 'cam-b'"); n != 0 {
		t.Fatalf("%d cam-b embeddings, want 0 (filtered out)", n)
	}
	again, err := Backfill(ctx, stage, conn, opts, func(BackfillProgress) {})
	if err != nil {
		t.Fatal(err)
	}
	if again.Embedded != 0 || again.Total != 1 { // only the missing image is left
		t.Fatalf("rerun: %+v, want nothing embedded, 1 left (the missing image)", again)
	}
	all, err := Backfill(ctx, stage, conn, BackfillOptions{Since: t0, Until: t0.Add(time.Hour)}, func(BackfillProgress) {})
	if err != nil {
		t.Fatal(err)
	}
	if all.Embedded != 20 { // cam-a 20..28 (5) + cam-b all 15
		t.Fatalf("all sources: %+v, want 20 embedded", all)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM embeddings FINAL"); n != 29 {
		t.Fatalf("%d embeddings in total, want 29 (30 minus the missing image)", n)
	}
}

func predAt(id, source string, ts time.Time, uri string) event.Prediction {
	return event.Prediction{EventID: id, TS: ts, Model: "m", ModelVersion: "v1", Source: source,
		Task: event.TaskClassification, ImageURI: uri, PredictedClass: "ok", Probs: event.ProbsOf(map[string]float64{"ok": 0.8, "dent": 0.2})}
}
