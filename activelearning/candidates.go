package activelearning

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/activelearning/score"
)

// Filter narrows the candidates; an empty list matches everything.
type Filter struct {
	Models, Versions, Sources, Classes []string
}

// candidate is one prediction as read for scoring.
type candidate struct {
	EventID, Model, Version, Source, Task, Arm, ImageURI, Class string
	TSms                                                        uint64
	ProbClasses                                                 []string
	ProbValues                                                  []float32
	BoxClasses                                                  []string
	BoxScores                                                   []float32
	BoxXYXY                                                     [][]float32
	Embedding                                                   []float32

	score   float64
	scores  []namedScore
	reasons []string
}

type namedScore struct {
	name  string
	value float64
}

// where renders the filter as SQL conditions with ? arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	for _, c := range []struct {
		col  string
		vals []string
	}{{"model", f.Models}, {"model_version", f.Versions}, {"source", f.Sources}, {"predicted_class", f.Classes}} {
		if len(c.vals) > 0 {
			// Slices bind as array literals; has() works on 18.16 and today.
			conds = append(conds, "has(?, "+c.col+")")
			args = append(args, c.vals)
		}
	}
	if len(conds) == 0 {
		return "1", nil
	}
	return strings.Join(conds, " AND "), args
}

// readCandidates reads up to limit predictions of [from, to) that match f and
// are neither picked nor labelled, a deterministic pseudo-random subsample
// when there are more (about limit; redelivered copies are counted first).
// LIMIT 1 BY event_id drops redelivered duplicates.
// With requireEmbedding only images embedded in embedder are read.
func readCandidates(ctx context.Context, conn driver.Conn, f Filter, from, to time.Time, embedder string,
	requireEmbedding bool, limit int) ([]*candidate, error) {
	where, args := f.where()
	q := `SELECT event_id, ts_ms, model, model_version, source, task, arm, image_uri, predicted_class,
			prob_classes, prob_values, box_classes, box_scores, box_xyxy
		FROM predictions
		WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND ` + where + `
			AND event_id NOT IN (SELECT event_id FROM al_picks)
			AND event_id NOT IN (SELECT event_id FROM labels)`
	all := append([]any{from.Unix(), to.Unix()}, args...)
	if requireEmbedding {
		q += ` AND event_id IN (SELECT event_id FROM embeddings
			WHERE embedder = ? AND ts >= toDateTime(?) AND ts < toDateTime(?))`
		all = append(all, embedder, from.Unix(), to.Unix())
	}
	// Over the limit, a hash of event_id picks a deterministic pseudo-random
	// share of the window, which avoids sorting the whole window by it.
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM ("+q+")", all...).Scan(&n); err != nil {
		return nil, fmt.Errorf("count candidates: %w", err)
	}
	if n > uint64(limit) {
		q += ` AND cityHash64(event_id) % 1000000 < ?`
		all = append(all, uint64(float64(limit)/float64(n)*1e6))
	}
	q = `SELECT * FROM (` + q + ` LIMIT 1 BY event_id) LIMIT ?`
	rows, err := conn.Query(ctx, q, append(all, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read candidates: %w", err)
	}
	defer rows.Close()
	var out []*candidate
	for rows.Next() {
		c := &candidate{}
		if err := rows.Scan(&c.EventID, &c.TSms, &c.Model, &c.Version, &c.Source, &c.Task, &c.Arm, &c.ImageURI,
			&c.Class, &c.ProbClasses, &c.ProbValues, &c.BoxClasses, &c.BoxScores, &c.BoxXYXY); err != nil {
			return nil, fmt.Errorf("scan candidate: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// loadEmbeddings fills the embeddings of cands from embedder's space. The ids
// travel as an external table (sent with the query, not in its text), so
// any number of them fits and ClickHouse joins them as a hash set in one
// scan of the window's embeddings.
func loadEmbeddings(ctx context.Context, conn driver.Conn, embedder string, from, to time.Time, cands []*candidate) error {
	if len(cands) == 0 {
		return nil
	}
	ids, err := ext.NewTable("al_ids", ext.Column("event_id", "String"))
	if err != nil {
		return fmt.Errorf("external id table: %w", err)
	}
	byID := make(map[string]*candidate, len(cands))
	for _, c := range cands {
		byID[c.EventID] = c
		if err := ids.Append(c.EventID); err != nil {
			return fmt.Errorf("external id table: %w", err)
		}
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithExternalTable(ids))
	// PREWHERE: the wide embedding column is read only for matching rows
	// (18.16 may otherwise move a useless condition there by itself).
	rows, err := conn.Query(ctx, `SELECT event_id, embedding FROM embeddings
		PREWHERE event_id IN (SELECT event_id FROM al_ids)
		WHERE embedder = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)
		LIMIT 1 BY event_id`, embedder, from.Unix(), to.Unix())
	if err != nil {
		return fmt.Errorf("read %d embeddings: %w", len(cands), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v []float32
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("scan embedding: %w", err)
		}
		if c, ok := byID[id]; ok {
			c.Embedding = v
		}
	}
	return rows.Err()
}

// readSeeds returns the embeddings of up to limit items already picked or
// labelled, newest first: what new picks must not duplicate.
func readSeeds(ctx context.Context, conn driver.Conn, embedder string, limit int) ([][]float32, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT embedding FROM embeddings
		PREWHERE event_id IN (SELECT event_id FROM al_picks) OR event_id IN (SELECT event_id FROM labels)
		WHERE embedder = ?
		ORDER BY ts_ms DESC LIMIT 1 BY event_id LIMIT ?`, embedder, limit)
	if err != nil {
		return nil, fmt.Errorf("read seeds: %w", err)
	}
	defer rows.Close()
	var out [][]float32
	for rows.Next() {
		var v []float32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan seed: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// picksSince counts the items picked at or after t (the daily budget).
func picksSince(ctx context.Context, conn driver.Conn, t time.Time) (int, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(event_id) FROM al_picks WHERE picked_at >= toDateTime(?)",
		t.Unix()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count today's picks: %w", err)
	}
	return int(n), nil
}

// DriftSignals reads the drift job's latest verdicts as a Foreignness: events
// the drift explanations list as unlike the reference since since score 1,
// other images of a scope whose latest run flagged any test score 0.5.
func DriftSignals(ctx context.Context, conn driver.Conn, since time.Time) (score.DriftSignals, error) {
	d := score.DriftSignals{Event: map[string]float64{}, Scope: map[[3]string]float64{}}
	rows, err := conn.Query(ctx, `SELECT model, model_version, source, max(f) FROM
		(SELECT model, model_version, source, test, argMax(flagged, run_at) AS f FROM drift_reports
			WHERE run_at >= toDateTime(?) GROUP BY model, model_version, source, test)
		GROUP BY model, model_version, source`, since.Unix())
	if err != nil {
		return d, fmt.Errorf("read drift verdicts: %w", err)
	}
	for rows.Next() {
		var m, v, s string
		var flagged uint8
		if err := rows.Scan(&m, &v, &s, &flagged); err != nil {
			rows.Close()
			return d, fmt.Errorf("scan drift verdict: %w", err)
		}
		if flagged > 0 {
			d.Scope[[3]string{m, v, s}] = 0.5
		}
	}
	rows.Close()
	rows, err = conn.Query(ctx, `SELECT DISTINCT item FROM drift_explanations
		WHERE kind = 'event' AND run_at >= toDateTime(?)`, since.Unix())
	if err != nil {
		return d, fmt.Errorf("read drift explanations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return d, fmt.Errorf("scan drift explanation: %w", err)
		}
		d.Event[id] = 1
	}
	return d, rows.Err()
}
