package drift

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

var t0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// stream writes perSecond synthetic events per second for seconds seconds
// of scope sc into predictions, embeddings (embedder chosen per event by
// embedderAt) and labels (every 5th event), shifted by shiftAt(second).
type stream struct {
	sc         Scope
	seconds    int
	perSecond  int
	shiftAt    func(sec int) float64
	embedderAt func(sec int) string
}

func writeStreams(t *testing.T, conn driver.Conn, streams ...stream) {
	t.Helper()
	ctx := context.Background()
	syn := NewSynthetic(42)
	rng := rand.New(rand.NewPCG(42, 1))
	preds, err := conn.PrepareBatch(ctx, `INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, task,
		image_uri, predicted_class, confidence, margin, entropy, class_set, prob_values, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	embs, err := conn.PrepareBatch(ctx, `INSERT INTO embeddings (event_id, ts, ts_ms, model, model_version, source,
		predicted_class, confidence, embedder, sample_weight, embedding, embedded_at)`)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := conn.PrepareBatch(ctx, `INSERT INTO labels (event_id, label, annotator, ts, ts_ms, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		for sec := range s.seconds {
			win := syn.Draw(rng, s.perSecond, s.shiftAt(sec))
			for i, row := range win.Rows {
				ts := t0.Add(time.Duration(sec)*time.Second + time.Duration(i)*time.Second/time.Duration(s.perSecond))
				id := fmt.Sprintf("%s-%d-%d", s.sc, sec, i)
				var classes []string
				var probs []float32
				for _, c := range slices.Sorted(mapKeys(row.Probs)) {
					classes = append(classes, c)
					probs = append(probs, float32(row.Probs[c]))
				}
				must(t, preds.Append(id, ts, uint64(ts.UnixMilli()), s.sc.Model, s.sc.Version, s.sc.Source, "classification",
					"file:///x.png", row.Class, float32(row.Confidence), float32(row.Margin), float32(row.Entropy),
					strings.Join(classes, ","), probs, ts))
				must(t, embs.Append(id, ts, uint64(ts.UnixMilli()), s.sc.Model, s.sc.Version, s.sc.Source, row.Class,
					float32(row.Confidence), s.embedderAt(sec), float32(1), win.Embeddings[i], ts.Add(time.Duration(sec)*time.Millisecond)))
				if i%5 == 0 {
					label := win.truth[i]
					must(t, labels.Append(id, label, "ann", ts, uint64(ts.UnixMilli()), ts))
				}
			}
		}
	}
	for _, b := range []driver.Batch{preds, embs, labels} {
		must(t, b.Send())
	}
}

func mapKeys(m map[string]float64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jobConfig() config.Drift {
	c := config.Default().Drift
	c.Window, c.ReferenceDuration = time.Minute, time.Minute
	c.Permutations = 199
	return c
}

func byScope(runs []ScopeRun) map[Scope]ScopeRun {
	m := map[Scope]ScopeRun{}
	for _, r := range runs {
		m[r.Scope] = r
	}
	return m
}

func logRuns(t *testing.T, runs []ScopeRun) {
	for _, run := range runs {
		for _, r := range run.Reports {
			t.Logf("%-16s %-14s %-17s p=%.3g effect=%.4f n=%d/%d ref=%q %s", r.Scope, r.Test, r.Status, r.PValue, r.Effect,
				r.NRef, r.NCur, r.Reference, r.Detail)
		}
	}
}

func flaggedTests(run ScopeRun) (flagged, insufficient []string) {
	for _, r := range run.Reports {
		if r.Flagged() {
			flagged = append(flagged, r.Test)
		}
		if r.Status == StatusInsufficient {
			insufficient = append(insufficient, r.Test)
		}
	}
	return flagged, insufficient
}

// TestJobOnClickHouse drives the job over real tables: the shifted scope is
// flagged and explained, the stable one is not, a scope with too little
// data says so, model versions are separate scopes, embedders are never
// mixed, accuracy is estimated and realised, and a pinned (imported)
// reference replaces the default and can be deleted again.
func TestJobOnClickHouse(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	none := func(int) float64 { return 0 }
	e1 := func(int) string { return "e1" }
	shifted, stable := Scope{"m", "v1", "a"}, Scope{"m", "v1", "b"}
	tiny, mixed := Scope{"m", "v2", "a"}, Scope{"m", "v1", "c"}
	writeStreams(t, conn,
		stream{sc: shifted, seconds: 120, perSecond: 5, embedderAt: e1, shiftAt: func(s int) float64 {
			if s >= 60 {
				return 0.7
			}
			return 0
		}},
		stream{sc: stable, seconds: 120, perSecond: 5, embedderAt: e1, shiftAt: none},
		stream{sc: tiny, seconds: 120, perSecond: 0, embedderAt: e1, shiftAt: none},
		stream{sc: mixed, seconds: 120, perSecond: 5, shiftAt: none, embedderAt: func(s int) string {
			if s < 60 {
				return "old-model"
			}
			return "new-model"
		}},
	)
	writeStreams(t, conn, stream{sc: tiny, seconds: 10, perSecond: 1, embedderAt: e1, shiftAt: none})

	job := NewJob(conn, jobConfig(), nil, testenv.Logger(t))
	now := t0.Add(120 * time.Second)
	runs, err := job.RunScopes(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	logRuns(t, runs)
	got := byScope(runs)
	if len(got) != 4 {
		t.Fatalf("scopes %v, want 4 (model × version × source)", got)
	}
	if f, _ := flaggedTests(got[shifted]); len(f) < 4 {
		t.Errorf("shifted scope: only %v flagged", f)
	}
	if f, ins := flaggedTests(got[stable]); len(f) > 0 || len(ins) > 0 {
		t.Errorf("stable scope: flagged %v, insufficient %v", f, ins)
	}
	if f, ins := flaggedTests(got[tiny]); len(f) > 0 || len(ins) != len(Tests) {
		t.Errorf("tiny scope: flagged %v, insufficient %v (want all)", f, ins)
	}
	for _, r := range got[mixed].Reports {
		wantInsufficient := r.Test == TestEmbeddingMMD || r.Test == TestEmbeddingKS
		if (r.Status == StatusInsufficient) != wantInsufficient || r.Flagged() {
			t.Errorf("scope with a new embedder: %s is %s (%s)", r.Test, r.Status, r.Detail)
		}
	}
	a, b := got[shifted].Accuracy, got[stable].Accuracy
	t.Logf("accuracy shifted %+v stable %+v", a, b)
	if !(a.Realised < b.Realised) || !(a.AvgConfidence < b.AvgConfidence) || !(a.ATC < b.ATC) || a.Labeled == 0 {
		t.Errorf("accuracy does not fall with the shift: shifted %+v, stable %+v", a, b)
	}

	if n := testenv.Count(t, conn, "SELECT count() FROM drift_reports WHERE flagged = 1 AND model_version = 'v1' AND source = 'a' AND reference = 'first 1m0s'"); n < 4 {
		t.Errorf("%d flagged report rows for the shifted scope", n)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM drift_explanations WHERE source = 'a' AND kind = 'class' AND item IN ('class-00', 'class-10', 'class-11') AND rank <= 3"); n < 3 {
		t.Errorf("top class explanations: %d of class-00/10/11 in the top 3", n)
	}
	if n := testenv.Count(t, conn, `SELECT count() FROM drift_explanations WHERE kind = 'event'
		AND item IN (SELECT event_id FROM embeddings WHERE source = 'a' AND ts >= toDateTime(?))`, t0.Add(60*time.Second).Unix()); n == 0 {
		t.Error("no current-window event named as unlike the reference")
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM drift_explanations WHERE source != 'a'"); n != 0 {
		t.Errorf("%d explanation rows for unflagged scopes", n)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM drift_accuracy WHERE method = 'realised' AND source = 'a' AND model_version = 'v1' AND value < 0.9"); n != 1 {
		t.Errorf("realised accuracy rows for the shifted scope: %d", n)
	}

	// The sequential mode adds one CUSUM row per scope: the shifted scope's
	// p-values cross it at once, the stable scope's do not.
	seqCfg := jobConfig()
	seqCfg.SequentialARL = 200
	seqRuns, err := NewJob(conn, seqCfg, nil, testenv.Logger(t)).RunScopes(ctx, now)
	must(t, err)
	for _, run := range seqRuns {
		last := run.Reports[len(run.Reports)-1]
		if last.Test != TestSequential {
			t.Fatalf("%s: last report is %s, want %s", run.Scope, last.Test, TestSequential)
		}
		if want := run.Scope == shifted; last.Flagged() != want {
			t.Errorf("%s: sequential flagged=%v (%s)", run.Scope, last.Flagged(), last.Detail)
		}
	}

	// Pin the stable scope's reference to the shifted scope's shifted
	// minute: now the (unshifted) current window differs from it.
	pin := Reference{Scope: stable, From: shifted, Window: Window{From: t0.Add(60 * time.Second), To: t0.Add(120 * time.Second)}, Note: "test"}
	must(t, PinReference(ctx, conn, pin))
	refs, err := ListReferences(ctx, conn)
	must(t, err)
	if len(refs) != 1 || refs[0].Scope != stable || refs[0].From != shifted || !refs[0].Window.From.Equal(pin.Window.From) {
		t.Fatalf("references %+v", refs)
	}
	runs, err = job.RunScopes(ctx, now.Add(time.Second))
	must(t, err)
	if f, _ := flaggedTests(byScope(runs)[stable]); len(f) < 3 || byScope(runs)[stable].Reference != "pinned from m/v1/a" {
		t.Errorf("stable scope against a pinned shifted reference: flagged %v, reference %q", f, byScope(runs)[stable].Reference)
	}
	must(t, DeleteReference(ctx, conn, stable))
	if _, err := GetReference(ctx, conn, stable); err == nil {
		t.Error("deleted reference still found")
	}
	runs, err = job.RunScopes(ctx, now.Add(2*time.Second))
	must(t, err)
	if f, _ := flaggedTests(byScope(runs)[stable]); len(f) > 0 {
		t.Errorf("after delete: stable scope flagged %v", f)
	}
}

// With a rolling reference the comparison is with the minute just before
// the current window, so a shift that started two minutes ago is the new
// normal and no longer alarms.
func TestJobRollingReference(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	shifted := Scope{"m", "v1", "a"}
	writeStreams(t, conn, stream{sc: shifted, seconds: 180, perSecond: 5, embedderAt: func(int) string { return "e1" },
		shiftAt: func(s int) float64 {
			if s >= 60 {
				return 0.7
			}
			return 0
		}})
	cfg := jobConfig()
	cfg.ReferenceMode = "rolling"
	runs, err := NewJob(conn, cfg, nil, testenv.Logger(t)).RunScopes(context.Background(), t0.Add(180*time.Second))
	must(t, err)
	logRuns(t, runs)
	if f, ins := flaggedTests(runs[0]); len(f) > 0 || len(ins) > 0 || runs[0].Reference != "rolling 1m0s" {
		t.Errorf("rolling reference: flagged %v, insufficient %v, reference %q", f, ins, runs[0].Reference)
	}
}
