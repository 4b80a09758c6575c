package embed

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func TestSampledRateAndDeterminism(t *testing.T) {
	n, hits := 20000, 0
	for i := range n {
		id := "event-" + string(rune('a'+i%26)) + time.Duration(i).String()
		if Sampled(id, 0.25) {
			hits++
		}
		if Sampled(id, 0.25) != Sampled(id, 0.25) {
			t.Fatal("sampling is not deterministic")
		}
	}
	// Binomial(20000, 0.25): sd ≈ 61; ±5 sd.
	if math.Abs(float64(hits)-5000) > 310 {
		t.Fatalf("sampled %d of %d at rate 0.25", hits, n)
	}
	if !Sampled("x", 1) || Sampled("x", 0) {
		t.Fatal("rates 1 and 0 must take all and none")
	}
}

// TestStageSkipsBadImagesAndStoresTheRest runs the stage on real ClickHouse
// and ONNX Runtime with one good image and three bad ones: the bad ones are
// counted by reason, the batch still succeeds, and only the good row lands.
func TestStageSkipsBadImagesAndStoresTheRest(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "good.png"), scene(320, 240, 1))
	if err := os.WriteFile(filepath.Join(root, "corrupt.jpg"), []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewStageMetrics(reg)
	model := openTiny(t)
	stage := NewStage(model, FileFetcher{Root: root}, conn, StageOptions{SampleRate: 1, Workers: 2}, m)
	if err := stage.Check(); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id, uri string) event.Prediction {
		return event.Prediction{EventID: id, TS: ts, Model: "m", ModelVersion: "v", Source: "s",
			Task: event.TaskClassification, ImageURI: uri, PredictedClass: "a", Probs: map[string]float64{"a": 1}}
	}
	items := []event.Prediction{
		mk("good", "file://"+filepath.Join(root, "good.png")),
		mk("missing", "file://"+filepath.Join(root, "nope.png")),
		mk("corrupt", "file://"+filepath.Join(root, "corrupt.jpg")),
		mk("escape", "file://"+root+"/../../etc/passwd"),
	}
	if err := stage.Store(context.Background(), items); err != nil {
		t.Fatalf("a bad image failed the whole batch: %v", err)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM embeddings"); n != 1 {
		t.Fatalf("%d embeddings stored, want 1", n)
	}
	var id string
	var vec []float32
	if err := conn.QueryRow(context.Background(), "SELECT event_id, embedding FROM embeddings").Scan(&id, &vec); err != nil {
		t.Fatal(err)
	}
	norm := 0.0
	for _, v := range vec {
		norm += float64(v) * float64(v)
	}
	if id != "good" || len(vec) != model.Dim() || math.Abs(norm-1) > 1e-4 {
		t.Fatalf("stored %q with %d dims, norm² %v", id, len(vec), norm)
	}
	for reason, want := range map[string]float64{"not_found": 1, "corrupt": 1, "forbidden": 1} {
		if got := testutil.ToFloat64(m.failures.WithLabelValues(reason)); got != want {
			t.Errorf("failures{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(m.images.WithLabelValues("embedded")); got != 1 {
		t.Errorf("embedded = %v, want 1", got)
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
