package drift

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Where the work happens: counts per class and label agreement aggregate
// over the whole window in ClickHouse; per-event scores, probabilities and
// embeddings are pulled as a bounded, hash-ordered subsample of at most
// max_samples rows, which is all a KS or kernel test needs.

type scopeStart struct {
	Scope
	first time.Time
}

// scopes lists every model × version × source with its first prediction.
func (j *Job) scopes(ctx context.Context) ([]scopeStart, error) {
	rows, err := j.conn.Query(ctx, `SELECT model, model_version, source, min(ts) FROM predictions
		GROUP BY model, model_version, source ORDER BY model, model_version, source`)
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	defer rows.Close()
	var out []scopeStart
	for rows.Next() {
		var s scopeStart
		if err := rows.Scan(&s.Model, &s.Version, &s.Source, &s.first); err != nil {
			return nil, fmt.Errorf("scan scope: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// readSample reads one window of sc; embeddings only from embedder (none
// when it is empty), because vectors of different embedders are not
// comparable.
func (j *Job) readSample(ctx context.Context, sc Scope, w Window, embedder string) (*Sample, error) {
	s := &Sample{}
	var err error
	if s.Classes, err = classCounts(ctx, j.conn, sc, w); err != nil {
		return nil, err
	}
	if s.Rows, err = predictionRows(ctx, j.conn, sc, w, j.cfg.MaxSamples); err != nil {
		return nil, err
	}
	if s.Labeled, s.Correct, err = labelAgreement(ctx, j.conn, sc, w); err != nil {
		return nil, err
	}
	if embedder == "" {
		s.EmbeddingNote = "no embeddings for this scope"
		return s, nil
	}
	if s.EmbeddingIDs, s.Embeddings, err = embeddings(ctx, j.conn, sc, embedder, w, j.cfg.MaxSamples); err != nil {
		return nil, err
	}
	if len(s.Embeddings) == 0 {
		s.EmbeddingNote = fmt.Sprintf("no embeddings from embedder %s in %s (embedders are never compared across)", embedder, sc)
	}
	return s, nil
}

const scopeFilter = "model = ? AND model_version = ? AND source = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)"

func scopeArgs(sc Scope, w Window) []any {
	return []any{sc.Model, sc.Version, sc.Source, w.From.Unix(), w.To.Unix()}
}

// classCounts counts distinct events per predicted class; the exact distinct
// count makes a redelivered event count once even before the table merges
// it away. Counting 64-bit hashes instead of the id strings is twice as fast
// on a million rows; a collision among a window's ids is vanishingly rare.
func classCounts(ctx context.Context, conn driver.Conn, sc Scope, w Window) (map[string]float64, error) {
	rows, err := conn.Query(ctx, `SELECT predicted_class, uniqExact(cityHash64(event_id)) FROM predictions
		WHERE `+scopeFilter+` GROUP BY predicted_class`, scopeArgs(sc, w)...)
	if err != nil {
		return nil, fmt.Errorf("class counts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]float64)
	for rows.Next() {
		var class string
		var n uint64
		if err := rows.Scan(&class, &n); err != nil {
			return nil, fmt.Errorf("scan class counts: %w", err)
		}
		out[class] = float64(n)
	}
	return out, rows.Err()
}

// predictionRows reads up to limit predictions, a deterministic
// pseudo-random subsample: the ids with the smallest hashes. Choosing the
// ids first (one light column) and then reading the wide rows of only those
// is 4× faster on large windows than sorting the wide rows; LIMIT 1 BY
// drops redelivered duplicates (which can make the sample slightly smaller
// than limit until the table merges).
func predictionRows(ctx context.Context, conn driver.Conn, sc Scope, w Window, limit int) ([]Row, error) {
	args := append(scopeArgs(sc, w), scopeArgs(sc, w)...)
	rows, err := conn.Query(ctx, `SELECT event_id, predicted_class, confidence, entropy, margin, prob_classes, prob_values
		FROM predictions WHERE `+scopeFilter+` AND event_id IN
			(SELECT event_id FROM predictions WHERE `+scopeFilter+` ORDER BY cityHash64(event_id) LIMIT ?)
		LIMIT 1 BY event_id`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read predictions: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var conf, ent, margin float32
		var classes []string
		var probs []float32
		if err := rows.Scan(&r.EventID, &r.Class, &conf, &ent, &margin, &classes, &probs); err != nil {
			return nil, fmt.Errorf("scan prediction: %w", err)
		}
		r.Confidence, r.Entropy, r.Margin = float64(conf), float64(ent), float64(margin)
		if len(classes) == len(probs) && len(classes) > 0 {
			r.Probs = make(map[string]float64, len(classes))
			for i, c := range classes {
				r.Probs[c] = float64(probs[i])
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// labelAgreement counts labelled events of the window and those whose
// prediction matches the label (any annotator's label when several exist).
// Labels are written after the prediction, so only labels from a day before
// the window on are joined; distinct counts absorb redelivered predictions.
func labelAgreement(ctx context.Context, conn driver.Conn, sc Scope, w Window) (labeled, correct int, err error) {
	rows, err := conn.Query(ctx, `SELECT uniqExact(event_id), uniqExactIf(event_id, pred = truth) FROM
		(SELECT event_id, predicted_class AS pred FROM predictions WHERE `+scopeFilter+`)
		ANY INNER JOIN
		(SELECT event_id, any(label) AS truth FROM labels
			WHERE label != '' AND ts >= toDateTime(?) GROUP BY event_id)
		USING event_id`, append(scopeArgs(sc, w), w.From.Add(-24*time.Hour).Unix())...)
	if err != nil {
		return 0, 0, fmt.Errorf("label agreement: %w", err)
	}
	defer rows.Close()
	var n, k uint64
	if rows.Next() {
		if err := rows.Scan(&n, &k); err != nil {
			return 0, 0, fmt.Errorf("scan label agreement: %w", err)
		}
	}
	return int(n), int(k), rows.Err()
}

// embeddings reads up to limit vectors of a window with their event ids.
// The embed stage may sample some events more often than others (a floor
// for quiet sources, a boost for uncertain events) and stores each row's
// weight = 1/inclusion probability; the subsample here undoes that with
// weighted sampling without replacement (Efraimidis–Spirakis: the largest
// keys u^(1/weight), u a hash of event_id), so both windows stand for their
// traffic, not for the sampling policy. Equal weights give a plain
// hash-ordered subsample.
func embeddings(ctx context.Context, conn driver.Conn, sc Scope, embedder string, w Window, limit int) ([]string, [][]float32, error) {
	filter := append([]any{embedder}, scopeArgs(sc, w)...)
	rows, err := conn.Query(ctx, `SELECT event_id, embedding FROM embeddings
		WHERE embedder = ? AND `+scopeFilter+` AND event_id IN
			(SELECT event_id FROM embeddings WHERE embedder = ? AND `+scopeFilter+`
			 ORDER BY pow((cityHash64(event_id) + 1) / 18446744073709551616, 1 / greatest(sample_weight, 1e-6)) DESC
			 LIMIT ?)
		LIMIT 1 BY event_id`, append(append(filter, filter...), limit)...)
	if err != nil {
		return nil, nil, fmt.Errorf("read embeddings: %w", err)
	}
	defer rows.Close()
	var ids []string
	var out [][]float32
	for rows.Next() {
		var id string
		var v []float32
		if err := rows.Scan(&id, &v); err != nil {
			return nil, nil, fmt.Errorf("scan embedding: %w", err)
		}
		ids = append(ids, id)
		out = append(out, v)
	}
	return ids, out, rows.Err()
}

func insertReports(ctx context.Context, conn driver.Conn, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_reports (run_at, model, model_version, source, embedder,
		test, status, statistic, p_value, effect, min_effect, alpha, flagged, n_ref, n_cur,
		ref_from, ref_to, cur_from, cur_to, detail, reference)`)
	if err != nil {
		return fmt.Errorf("prepare insert of %d drift reports: %w", len(reports), err)
	}
	for _, r := range reports {
		flagged := uint8(0)
		if r.Flagged() {
			flagged = 1
		}
		if err := batch.Append(r.RunAt.UTC(), r.Model, r.Version, r.Source, r.Embedder, r.Test, r.Status,
			finite(r.Statistic), finite(r.PValue), finite(r.Effect), r.MinEffect, r.Alpha, flagged,
			uint32(r.NRef), uint32(r.NCur), unixTime(r.Ref.From), unixTime(r.Ref.To), unixTime(r.Cur.From), unixTime(r.Cur.To),
			r.Detail, r.Reference); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append drift report: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift reports: %w", len(reports), err)
	}
	return nil
}

// insertExplanations stores the explanations of flagged reports only: they
// are what an operator opens, and it keeps the table small.
func insertExplanations(ctx context.Context, conn driver.Conn, reports []Report) error {
	n := 0
	for _, r := range reports {
		if r.Flagged() {
			n += len(r.Explain)
		}
	}
	if n == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_explanations (run_at, model, model_version, source, test,
		kind, rank, item, value, p_value, detail)`)
	if err != nil {
		return fmt.Errorf("prepare insert of %d drift explanations: %w", n, err)
	}
	for _, r := range reports {
		if !r.Flagged() {
			continue
		}
		rank := map[string]uint16{}
		for _, e := range r.Explain {
			rank[e.Kind]++
			if err := batch.Append(r.RunAt.UTC(), r.Model, r.Version, r.Source, r.Test,
				e.Kind, rank[e.Kind], e.Item, finite(e.Value), e.PValue, e.Detail); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append drift explanation: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift explanations: %w", n, err)
	}
	return nil
}

func insertAccuracy(ctx context.Context, conn driver.Conn, runAt time.Time, runs []ScopeRun) error {
	if len(runs) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_accuracy (run_at, model, model_version, source, method, value, n)`)
	if err != nil {
		return fmt.Errorf("prepare insert of drift accuracy: %w", err)
	}
	for _, run := range runs {
		a, sc := run.Accuracy, run.Scope
		for _, m := range []struct {
			method string
			v      float64
			n      int
		}{
			{AccuracyAvgConfidence, a.AvgConfidence, a.N},
			{AccuracyATC, a.ATC, a.N},
			{AccuracyRealised, a.Realised, a.Labeled},
			{AccuracyReference, a.RefRealised, a.RefLabeled},
		} {
			if err := batch.Append(runAt.UTC(), sc.Model, sc.Version, sc.Source, m.method, m.v, uint32(m.n)); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append drift accuracy: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert drift accuracy of %d scopes: %w", len(runs), err)
	}
	return nil
}

// finite maps ±Inf (e.g. a PSI with an empty class) to the largest float so
// that sorting and averaging in SQL keep working.
func finite(v float64) float64 {
	switch {
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}
