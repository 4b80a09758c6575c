package drift

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/testenv"
)

// insertPredictions writes one insert (one part) of predictions: event i of
// ids has class classOf(i) and lies in the reference minute when i is even,
// in the current minute when odd.
func insertPredictions(t *testing.T, conn driver.Conn, sc Scope, ids []int, classOf func(int) string) {
	t.Helper()
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, `INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, task,
		predicted_class, confidence, margin, entropy, class_set, prob_values, ingested_at)`)
	must(t, err)
	for _, i := range ids {
		ts := t0.Add(time.Duration(i%2)*time.Minute + time.Duration(i%50)*time.Second)
		must(t, b.Append(fmt.Sprintf("ev-%04d", i), ts, uint64(ts.UnixMilli()), sc.Model, sc.Version, sc.Source, "classification",
			classOf(i), float32(0.5+float64(i%40)/100), float32(0.1), float32(0.3), "a,b", []float32{0.6, 0.4}, ts))
	}
	must(t, b.Send())
}

func classOf(i int) string { return []string{"a", "b", "c"}[i%3] }

// TestReadCountsRedeliveredEventsOnce stores 600 events, 100 of them a
// second time in another insert and 50 twice within one insert, and checks
// that class counts, label agreement and the subsample see every event once
// — before the table merges the copies away (distinct-count path) and after
// (the cheaper merged-part path) — and that the threshold subsample is the
// set of smallest hashes a full sort gives.
func TestReadCountsRedeliveredEventsOnce(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	sc := Scope{"m", "v1", "cam"}
	var all []int
	for i := range 600 {
		all = append(all, i)
	}
	insertPredictions(t, conn, sc, all, classOf)
	insertPredictions(t, conn, sc, append(all[100:200], all[300:350]...), classOf)
	insertPredictions(t, conn, sc, append(all[400:450], all[400:450]...), classOf)
	lb, err := conn.PrepareBatch(ctx, `INSERT INTO labels (event_id, label, annotator, ts, ts_ms, ingested_at)`)
	must(t, err)
	for i := 0; i < 600; i += 5 {
		label := classOf(i)
		if i%20 == 0 {
			label = "wrong"
		}
		ts := t0.Add(5 * time.Minute)
		must(t, lb.Append(fmt.Sprintf("ev-%04d", i), label, "x", ts, uint64(ts.UnixMilli()), ts))
	}
	must(t, lb.Send())

	ref := side{sc, Window{From: t0, To: t0.Add(time.Minute)}}
	cur := side{sc, Window{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)}}
	want := map[string]float64{"a": 100, "b": 100, "c": 100}
	check := func(stage string) {
		t.Helper()
		job := NewJob(conn, jobConfig(), nil, testenv.Logger(t))
		job.cfg.MaxSamples = 120
		r, c, err := job.readSamples(ctx, ref, cur, "", true)
		must(t, err)
		for name, s := range map[string]*Sample{"reference": r, "current": c} {
			if fmt.Sprint(s.Classes) != fmt.Sprint(want) {
				t.Errorf("%s, %s: class counts %v, want %v", stage, name, s.Classes, want)
			}
			if s.Labeled != 60 {
				t.Errorf("%s, %s: %d labelled, want 60", stage, name, s.Labeled)
			}
			ids := map[string]bool{}
			for _, row := range s.Rows {
				if ids[row.EventID] {
					t.Errorf("%s, %s: %s twice in the subsample", stage, name, row.EventID)
				}
				ids[row.EventID] = true
				if len(row.Probs) != 2 || row.Probs["a"] != float64(float32(0.6)) {
					t.Errorf("%s, %s: %s has probabilities %v, want a: 0.6, b: 0.4 (from class_set)", stage, name, row.EventID, row.Probs)
				}
			}
			if len(s.Rows) != 120 {
				t.Errorf("%s, %s: subsample of %d rows, want 120", stage, name, len(s.Rows))
			}
		}
		// Every 5th event is labelled; the labels of i%20 == 0 (all in
		// the reference window) are wrong.
		if r.Correct != 30 || c.Correct != 60 {
			t.Errorf("%s: correct %d in reference, %d in current, want 30 and 60", stage, r.Correct, c.Correct)
		}
		smallest := smallestHashes(t, conn, cur, 120)
		if got := rowIDs(c.Rows); !slices.Equal(got, smallest) {
			t.Errorf("%s: threshold subsample differs from the full sort:\n%v\n%v", stage, got, smallest)
		}
	}
	check("unmerged")

	// A pinned reference of the scope itself may overlap the current
	// window: rows of both belong to both, so each window is read alone.
	job := NewJob(conn, jobConfig(), nil, testenv.Logger(t))
	wide := side{sc, Window{From: t0, To: t0.Add(2 * time.Minute)}}
	r, c, err := job.readSamples(ctx, wide, cur, "", true)
	must(t, err)
	if total(r.Classes) != 600 || total(c.Classes) != 300 || r.Labeled != 120 || c.Labeled != 60 {
		t.Errorf("overlapping windows: %v (%d labelled) and %v (%d labelled), want 600 (120) and 300 (60)",
			r.Classes, r.Labeled, c.Classes, c.Labeled)
	}

	must(t, conn.Exec(ctx, "OPTIMIZE TABLE predictions FINAL"))
	if n := testenv.Count(t, conn, "SELECT count() FROM predictions"); n != 600 {
		t.Fatalf("%d rows after OPTIMIZE FINAL, want 600", n)
	}
	check("merged")
}

func rowIDs(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.EventID
	}
	return out
}

func smallestHashes(t *testing.T, conn driver.Conn, s side, n int) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT event_id FROM
		(SELECT DISTINCT event_id, cityHash64(event_id) AS h FROM predictions WHERE `+cond+`) ORDER BY h LIMIT ?`,
		append(s.args(), n)...)
	must(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		must(t, rows.Scan(&id))
		out = append(out, id)
	}
	must(t, rows.Err())
	return out
}

// When the hash threshold lets too few rows through (here: the count it is
// computed from is far too high), the subsample falls back to a full sort
// and is still the smallest hashes.
func TestPredictionSampleFallback(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	sc := Scope{"m", "v1", "cam"}
	var all []int
	for i := range 400 {
		all = append(all, i)
	}
	insertPredictions(t, conn, sc, all, classOf)
	insertPredictions(t, conn, sc, all[:100], classOf)
	cur := side{sc, Window{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)}}
	out := []*Sample{{Classes: map[string]float64{"a": 1e9}}}
	must(t, predictionRows(context.Background(), conn, sides{cur}, out, 50))
	if got, want := rowIDs(out[0].Rows), smallestHashes(t, conn, cur, 50); !slices.Equal(got, want) {
		t.Errorf("fallback subsample\n%v\nwant\n%v", got, want)
	}
}

func TestOneMergedPart(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  bool
	}{
		{[]string{"202601_1_200_4"}, true},
		{[]string{"202601_1_200_4_7"}, true},
		{[]string{"202601_3_3_0"}, false},
		{[]string{"202601_1_200_4", "202601_201_201_0"}, false},
		{nil, false},
	} {
		m := map[string]bool{}
		for _, p := range c.parts {
			m[p] = true
		}
		if got := oneMergedPart(m); got != c.want {
			t.Errorf("oneMergedPart(%v) = %v, want %v", c.parts, got, c.want)
		}
	}
}

// The job lists scopes with one full scan, then only looks for new ones
// (in the rows since a window before its last look, once per
// reference_duration), keeping each scope's first prediction.
func TestScopeCacheFindsNewScopes(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	a, b := Scope{"m", "v1", "a"}, Scope{"m", "v1", "b"}
	insertPredictions(t, conn, a, []int{0, 1, 2, 3}, classOf) // t0 … t0+1m3s
	job := NewJob(conn, jobConfig(), nil, testenv.Logger(t))  // window and reference 1m
	list := func(now time.Time) map[Scope]time.Time {
		t.Helper()
		got, err := job.scopes(ctx, now)
		must(t, err)
		m := map[Scope]time.Time{}
		for _, s := range got {
			m[s.Scope] = s.first
		}
		return m
	}
	if got := list(t0.Add(2 * time.Minute)); len(got) != 1 || !got[a].Equal(t0) {
		t.Fatalf("first look: %v, want %s from %s", got, a, t0)
	}
	// Scope b starts at t0+2m30s.
	bs, err := conn.PrepareBatch(ctx, `INSERT INTO predictions (event_id, ts, ts_ms, model, model_version, source, predicted_class, ingested_at)`)
	must(t, err)
	bt := t0.Add(150 * time.Second)
	must(t, bs.Append("b-1", bt, uint64(bt.UnixMilli()), b.Model, b.Version, b.Source, "a", bt))
	must(t, bs.Send())
	if got := list(t0.Add(150 * time.Second)); len(got) != 1 {
		t.Errorf("30 s after the last look (reference_duration 1m): %v, want only %s", got, a)
	}
	if got := list(t0.Add(190 * time.Second)); len(got) != 2 || !got[b].Equal(bt) || !got[a].Equal(t0) {
		t.Errorf("70 s after the last look: %v, want %s from %s and %s from %s", got, a, t0, b, bt)
	}
	// A pass back in time (lookout drift run -at) lists from scratch.
	if got := list(t0.Add(90 * time.Second)); len(got) != 2 {
		t.Errorf("back in time: %v", got)
	}
}

func TestAnyLabels(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	if ok, err := anyLabels(ctx, conn); err != nil || ok {
		t.Fatalf("empty table: %v, %v", ok, err)
	}
	b, err := conn.PrepareBatch(ctx, `INSERT INTO labels (event_id, label, annotator, ts, ts_ms, ingested_at)`)
	must(t, err)
	must(t, b.Append("e", "cat", "x", t0, uint64(t0.UnixMilli()), t0))
	must(t, b.Send())
	if ok, err := anyLabels(ctx, conn); err != nil || !ok {
		t.Fatalf("one label: %v, %v", ok, err)
	}
}
