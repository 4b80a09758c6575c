package embed

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/config"
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
	stage := NewStage(model, FileFetcher{Root: root}, conn, StageOptions{Sampling: SamplingConfig{Rate: 1}, Workers: 2}, m)
	if err := stage.Check(); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id, uri string) Item {
		return Item{Weight: 4, Prediction: event.Prediction{EventID: id, TS: ts, Model: "m", ModelVersion: "v", Source: "s",
			Task: event.TaskClassification, ImageURI: uri, PredictedClass: "a", Probs: event.ProbsOf(map[string]float64{"a": 1})}}
	}
	items := []Item{
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
	var weight float32
	if err := conn.QueryRow(context.Background(), "SELECT event_id, embedding, sample_weight FROM embeddings").Scan(&id, &vec, &weight); err != nil {
		t.Fatal(err)
	}
	if weight != 4 {
		t.Errorf("sample_weight %v, want the item's 4", weight)
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

// TestStagePipelineMatchesDirectEmbedding runs the overlapped pipeline with
// several workers, concurrent inferers and batches that do not divide the
// item count, and checks every vector against embedding the same image
// directly, with failed images left nil in place.
func TestStagePipelineMatchesDirectEmbedding(t *testing.T) {
	root := t.TempDir()
	model := openTiny(t)
	var items []Item
	var want [][]float32
	for i := range 11 {
		name := fmt.Sprintf("img%02d.jpg", i)
		data := encodeJPEG(t, scene(200+i*7, 150+i*3, uint64(i)), 85)
		if i%4 == 3 {
			data = data[:len(data)/3] // truncated JPEG
		}
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		items = append(items, Item{Prediction: predAt(name, "s", time.Now(), "file://"+filepath.Join(root, name))})
		var vec []float32
		if img, err := Decode(data, Limits{}); err == nil {
			vs, err := model.Embed(context.Background(), Preprocess(img, DefaultPreprocess(), nil), 1)
			if err != nil {
				t.Fatal(err)
			}
			vec = vs[0]
		}
		want = append(want, vec)
	}
	stage := NewStage(model, FileFetcher{Root: root}, nil, StageOptions{Workers: 3, Inferers: 2, InferBatch: 3}, nil)
	got, err := stage.Embed(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range items {
		switch {
		case (got[i] == nil) != (want[i] == nil):
			t.Errorf("item %d: got nil=%v, want nil=%v", i, got[i] == nil, want[i] == nil)
		case got[i] != nil && maxAbsDiff(got[i], want[i]) > 1e-5:
			t.Errorf("item %d: pipeline vector differs from the direct one by %g", i, maxAbsDiff(got[i], want[i]))
		}
	}
	st := stage.Stats()
	if st.Fetch.Images != 11 || st.Decode.Images != 11 || st.Preprocess.Images != 9 || st.Infer.Images != 9 {
		t.Errorf("stats %+v, want 11 fetched and decoded, 9 preprocessed and inferred", st)
	}
	// A cancelled context stops the pipeline with an error, not a partial result.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := stage.Embed(ctx, items); err == nil {
		t.Error("Embed on a cancelled context succeeded")
	}
}

func TestPickSize(t *testing.T) {
	for _, c := range []struct{ declared, configured, want int }{
		{224, 0, 224}, {224, 224, 224}, {0, 0, 224}, {0, 518, 518}, {224, 518, -1}, {0, 500, -1},
	} {
		got, err := pickSize(c.declared, c.configured)
		if c.want < 0 && err == nil || c.want >= 0 && (err != nil || got != c.want) {
			t.Errorf("pickSize(%d, %d) = %d, %v; want %d", c.declared, c.configured, got, err, c.want)
		}
	}
}

// TestCheckRefusesCropThatDoesNotFitTheModel: a configured crop other than
// the model's fixed input size stops start-up, at Open or at Check.
func TestCheckRefusesCropThatDoesNotFitTheModel(t *testing.T) {
	model := openTiny(t)
	cfg := config.Default().Embed
	if err := NewStage(model, FileFetcher{Root: t.TempDir()}, nil, Options(cfg), nil).Check(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	cfg.ResizeShortest, cfg.Crop = 586, 518
	if err := NewStage(model, FileFetcher{Root: t.TempDir()}, nil, Options(cfg), nil).Check(); err == nil {
		t.Fatal("crop 518 accepted for a 224 model")
	}
	mc := ModelOptions(cfg)
	mc.Path, mc.ORTLibrary = tinyModelPath(t), ortLibrary(t)
	if _, err := Open(mc); err == nil || !strings.Contains(err.Error(), "518") {
		t.Fatalf("Open with crop 518 on a fixed-224 model: %v", err)
	}
}

// TestStreamDecodeSamplesWithWeights drives the consumer-facing Decode with
// real event JSON: invalid events are dropped, and sampled ones carry the
// weight 1/p of their (boosted) inclusion probability.
func TestStreamDecodeSamplesWithWeights(t *testing.T) {
	stage := NewStage(nil, nil, nil, StageOptions{Sampling: SamplingConfig{Rate: 0.2, UncertainBelow: 0.5, UncertaintyBoost: 2}}, nil)
	dec := stage.Stream().Decode
	if _, ok, err := dec(kafka.Message{Key: []byte("x"), Value: []byte(`{"event_id":`)}); ok || err != nil {
		t.Fatalf("invalid event: ok=%v err=%v", ok, err)
	}
	taken := map[float64]int{}
	for i := range 2000 {
		conf := []float64{0.9, 0.4}[i%2]
		id := fmt.Sprintf("ev-%d", i)
		js := fmt.Sprintf(`{"event_id":%q,"ts":"2026-01-05T08:00:00.000Z","model":"m","model_version":"v","source":"s","task":"classification","image_uri":"file:///x.png","probs":{"a":%v,"b":%v,"c":%v}}`,
			id, conf, (1-conf)/2, (1-conf)/2)
		it, ok, err := dec(kafka.Message{Key: []byte(id), Value: []byte(js)})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			taken[it.Weight]++
		}
	}
	// 1000 confident at p=0.2 (weight 5), 1000 uncertain at p=0.4 (weight 2.5).
	if len(taken) != 2 || taken[5] < 150 || taken[5] > 250 || taken[2.5] < 330 || taken[2.5] > 470 {
		t.Fatalf("sampled by weight %v, want ≈ 200 at 5 and ≈ 400 at 2.5", taken)
	}
}
