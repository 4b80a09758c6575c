package activelearning

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/activelearning/score"
	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

const testEmbedder = "test-embedder@0000"

func unitVec(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	n := 0.0
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i] * v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

func nearCopy(r *rand.Rand, v []float32, eps float64) []float32 {
	out := make([]float32, len(v))
	n := 0.0
	for i := range v {
		out[i] = v[i] + float32(eps*r.NormFloat64()/math.Sqrt(float64(len(v))))
		n += float64(out[i] * out[i])
	}
	for i := range out {
		out[i] /= float32(math.Sqrt(n))
	}
	return out
}

func insertEmbeddings(t *testing.T, conn driver.Conn, preds []event.Prediction, vecs map[string][]float32) {
	t.Helper()
	b, err := conn.PrepareBatch(context.Background(), "INSERT INTO embeddings")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range preds {
		v, ok := vecs[p.EventID]
		if !ok {
			continue
		}
		if err := b.Append(p.EventID, p.TS.UTC(), uint64(p.TS.UnixMilli()), p.Model, p.ModelVersion, p.Source,
			p.PredictedClass, float32(0.5), testEmbedder, float32(1), v, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// world is a small production history: 12 scenes × 5 near-identical frames
// on two cameras, scene 0 the most uncertain, scene 11 already labelled, and
// one image that stable and canary classify differently.
type world struct {
	preds []event.Prediction
	scene map[string]int // event_id → scene
}

func buildWorld(t *testing.T, conn driver.Conn, now time.Time) world {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	w := world{scene: map[string]int{}}
	vecs := map[string][]float32{}
	classes := []string{"dent", "scratch", "ok"}
	for s := range 12 {
		base := unitVec(r, 32)
		for f := range 5 {
			id := fmt.Sprintf("s%02d-f%d", s, f)
			top := 0.5 + 0.03*float64(s) + 0.01*float64(f) // lower top prob = more uncertain
			cls := classes[s%3]
			probs := map[string]float64{}
			for _, c := range classes {
				probs[c] = (1 - top) / 2
			}
			probs[cls] = top
			w.preds = append(w.preds, event.Prediction{EventID: id, TS: now.Add(-time.Duration(60-s*5-f) * time.Minute),
				Model: "m", ModelVersion: "v1", Source: fmt.Sprint("cam-", 1+s%2), Task: event.TaskClassification,
				ImageURI: "file:///img/" + id + ".png", PredictedClass: cls, Probs: event.ProbsOf(probs), Arm: event.ArmStable})
			vecs[id] = nearCopy(r, base, 0.05)
			w.scene[id] = s
		}
	}
	// A confident stable prediction whose canary says otherwise.
	img := "file:///img/disputed.png"
	w.preds = append(w.preds,
		event.Prediction{EventID: "disputed-stable", TS: now.Add(-time.Minute), Model: "m", ModelVersion: "v1",
			Source: "cam-1", Task: event.TaskClassification, ImageURI: img, PredictedClass: "ok", Arm: event.ArmStable,
			Probs: event.ProbsOf(map[string]float64{"ok": 0.7, "dent": 0.2, "scratch": 0.1})},
		event.Prediction{EventID: "disputed-canary", TS: now.Add(-time.Minute), Model: "m", ModelVersion: "v2",
			Source: "cam-1", Task: event.TaskClassification, ImageURI: img, PredictedClass: "dent", Arm: event.ArmCanary,
			Probs: event.ProbsOf(map[string]float64{"ok": 0.1, "dent": 0.8, "scratch": 0.1})})
	vecs["disputed-stable"] = unitVec(r, 32)
	vecs["disputed-canary"] = vecs["disputed-stable"]
	w.scene["disputed-stable"] = 100
	// Store every prediction twice, as a redelivery would.
	if err := ingest.InsertPredictions(context.Background(), conn, append(slices.Clone(w.preds), w.preds...), now); err != nil {
		t.Fatal(err)
	}
	insertEmbeddings(t, conn, w.preds, vecs)
	// Scene 11 frame 0 was labelled earlier.
	if err := ingest.InsertLabels(context.Background(), conn, []event.Label{{EventID: "s11-f0", Label: "ok",
		Annotator: "old", TS: now.Add(-time.Hour)}}, now); err != nil {
		t.Fatal(err)
	}
	return w
}

func testOptions() Options {
	return Options{Window: 2 * time.Hour, RunSize: 6, DailyBudget: 8, MaxCandidates: 10000, PoolFactor: 20,
		Uncertainty: score.Entropy, DisagreementWeight: 1, ForeignnessWeight: 0.3, ConfidentBoxScore: 0.5,
		DuplicateDistance: 0.05, ClassQuota: 0.5, SourceQuota: 1, MaxSeeds: 1000, RequireEmbedding: true}
}

func TestSelectionHonoursDiversityQuotasAndBudget(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	now := time.Now().UTC()
	w := buildWorld(t, conn, now)
	s := NewSelector(conn, testOptions(), testenv.Logger(t), nil)
	s.Foreignness = score.DriftSignals{}

	res, err := s.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Picks) != 6 {
		t.Fatalf("picked %d, want the run size 6", len(res.Picks))
	}
	stored, err := queue.QueryPicks(ctx, conn, "selection_id = ?", res.SelectionID)
	if err != nil || len(stored) != 6 {
		t.Fatalf("stored %d picks (err %v), want 6", len(stored), err)
	}
	scenes := map[int]bool{}
	perClass := map[string]int{}
	var disputed *queue.Item
	for i, it := range stored {
		sc := w.scene[it.EventID]
		if scenes[sc] {
			t.Errorf("scene %d picked twice (%s): near-duplicate", sc, it.EventID)
		}
		scenes[sc] = true
		if sc == 11 {
			t.Errorf("%s duplicates an already labelled image", it.EventID)
		}
		perClass[it.PredictedClass]++
		if len(it.Reasons) == 0 || len(it.ScoreNames) != len(it.ScoreValues) || !slices.Contains(it.ScoreNames, "entropy") {
			t.Errorf("%s stored without reasons/scores: %+v", it.EventID, it)
		}
		if it.EventID == "disputed-stable" {
			disputed = &stored[i]
		}
		if it.EventID == "disputed-canary" {
			t.Error("the canary twin of an image was picked as a separate item")
		}
	}
	for c, n := range perClass {
		if n > 3 {
			t.Errorf("class %s has %d of 6 picks, quota 3", c, n)
		}
	}
	if !scenes[0] {
		t.Error("the most uncertain scene 0 was not picked")
	}
	if disputed == nil || !strings.Contains(strings.Join(disputed.Reasons, ","), "arms_disagree:canary=dent") {
		t.Errorf("the stable/canary disagreement was not picked with its reason: %+v", disputed)
	}

	// The daily budget of 8 leaves 2 for the next run, then nothing.
	res2, err := s.Run(ctx, false)
	if err != nil || len(res2.Picks) != 2 {
		t.Fatalf("second run picked %d (err %v), want the 2 left of the daily budget", len(res2.Picks), err)
	}
	for _, it := range res2.Picks {
		if scenes[w.scene[it.EventID]] {
			t.Errorf("second run picked %s, a near-duplicate of a queued item", it.EventID)
		}
		scenes[w.scene[it.EventID]] = true
	}
	res3, err := s.Run(ctx, false)
	if err != nil || len(res3.Picks) != 0 {
		t.Fatalf("third run picked %d (err %v), want 0: budget spent", len(res3.Picks), err)
	}
	if n := testenv.Count(t, conn, "SELECT uniqExact(event_id) FROM al_picks"); n != 8 {
		t.Fatalf("%d picks stored, want 8", n)
	}
}

func TestSelectionFiltersAndForeignness(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	now := time.Now().UTC()
	w := buildWorld(t, conn, now)
	opts := testOptions()
	opts.Filter = Filter{Sources: []string{"cam-2"}, Classes: []string{"scratch", "ok"}}
	opts.ForeignnessWeight = 10
	s := NewSelector(conn, opts, testenv.Logger(t), nil)
	// The drift job says scene 7's first frame is unlike the reference.
	s.Foreignness = score.DriftSignals{Event: map[string]float64{"s07-f0": 1}}
	res, err := s.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Picks) == 0 {
		t.Fatal("nothing picked")
	}
	for _, it := range res.Picks {
		if it.Source != "cam-2" || it.PredictedClass == "dent" {
			t.Errorf("%s (%s, %s) does not match the filter", it.EventID, it.Source, it.PredictedClass)
		}
	}
	if res.Picks[0].EventID != "s07-f0" || !slices.Contains(res.Picks[0].Reasons, "drifted_domain") {
		t.Errorf("first pick %+v, want the foreign s07-f0", res.Picks[0])
	}
	_ = w
	if n := testenv.Count(t, conn, "SELECT count() FROM al_picks"); n != 0 {
		t.Fatalf("dry run stored %d picks", n)
	}
}

func TestDriftSignalsFromDriftTables(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	now := time.Now().UTC()
	rb, err := conn.PrepareBatch(ctx, "INSERT INTO drift_reports (run_at, model, model_version, source, test, flagged)")
	if err != nil {
		t.Fatal(err)
	}
	// cam-2 flagged in its latest run; cam-1 flagged earlier but not any more.
	for _, r := range []struct {
		at      time.Time
		source  string
		flagged uint8
	}{{now.Add(-time.Minute), "cam-2", 1}, {now.Add(-2 * time.Minute), "cam-1", 1}, {now.Add(-time.Minute), "cam-1", 0}} {
		if err := rb.Append(r.at, "m", "v1", r.source, "embeddings", r.flagged); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Send(); err != nil {
		t.Fatal(err)
	}
	eb, err := conn.PrepareBatch(ctx, "INSERT INTO drift_explanations (run_at, model, model_version, source, test, kind, rank, item, value)")
	if err != nil {
		t.Fatal(err)
	}
	if err := eb.Append(now, "m", "v1", "cam-2", "embeddings", "event", uint16(0), "odd-1", 1.7); err != nil {
		t.Fatal(err)
	}
	if err := eb.Send(); err != nil {
		t.Fatal(err)
	}
	d, err := DriftSignals(ctx, conn, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    score.Subject
		want float64
	}{
		{score.Subject{EventID: "x", Model: "m", ModelVersion: "v1", Source: "cam-2"}, 0.5},
		{score.Subject{EventID: "odd-1", Model: "m", ModelVersion: "v1", Source: "cam-2"}, 1},
		{score.Subject{EventID: "y", Model: "m", ModelVersion: "v1", Source: "cam-1"}, 0},
	} {
		if got := d.Foreignness(c.s); got != c.want {
			t.Errorf("%+v: foreignness %v, want %v", c.s, got, c.want)
		}
	}
}

func TestMaxCandidatesSubsamples(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	buildWorld(t, conn, time.Now().UTC())
	opts := testOptions()
	opts.MaxCandidates = 30
	s := NewSelector(conn, opts, testenv.Logger(t), nil)
	s.Foreignness = score.DriftSignals{}
	res, err := s.Run(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	// 61 candidates (62 predictions, one labelled) sampled down to about 30.
	if res.Candidates < 10 || res.Candidates > 30 {
		t.Fatalf("%d candidates read, want a hash sample of at most 30", res.Candidates)
	}
}

func TestDetectionCandidates(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	now := time.Now().UTC()
	r := rand.New(rand.NewPCG(9, 9))
	box := func(cls string, s float64) event.Box {
		return event.Box{Class: cls, Score: s, XYXY: [4]float64{1, 2, 3, 4}}
	}
	preds := []event.Prediction{
		{EventID: "sure", Boxes: []event.Box{box("dent", 0.95), box("dent", 0.9)}},
		{EventID: "unsure", Boxes: []event.Box{box("scratch", 0.3), box("dent", 0.2)}},
		{EventID: "mixed", Boxes: []event.Box{box("dent", 0.9), box("scratch", 0.4)}},
	}
	vecs := map[string][]float32{}
	for i := range preds {
		p := &preds[i]
		p.TS, p.Model, p.ModelVersion, p.Source, p.Task = now.Add(-time.Minute), "det", "v1", "cam-1", event.TaskDetection
		p.ImageURI = "file:///img/" + p.EventID + ".png"
		vecs[p.EventID] = unitVec(r, 16)
	}
	if err := ingest.InsertPredictions(ctx, conn, preds, now); err != nil {
		t.Fatal(err)
	}
	insertEmbeddings(t, conn, preds, vecs)
	opts := testOptions()
	opts.ClassQuota = 1
	s := NewSelector(conn, opts, testenv.Logger(t), nil)
	s.Foreignness = score.DriftSignals{}
	res, err := s.Run(ctx, true)
	if err != nil || len(res.Picks) != 3 {
		t.Fatalf("picked %d, %v", len(res.Picks), err)
	}
	if res.Picks[0].EventID != "unsure" || !slices.Contains(res.Picks[0].Reasons, "no_confident_box") {
		t.Fatalf("first pick %+v, want the image with no confident box", res.Picks[0])
	}
	if res.Picks[2].EventID != "sure" {
		t.Fatalf("last pick %s, want the confident image", res.Picks[2].EventID)
	}
	if !slices.Contains(res.Picks[0].ScoreNames, "box_min") || len(res.Picks[0].BoxScores) != 2 {
		t.Fatalf("detection scores/boxes not kept: %+v", res.Picks[0])
	}
}
