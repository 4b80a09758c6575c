package drift

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

type scopeStart struct {
	Scope
	first time.Time
}

// scopes lists every model × source with the time of its first prediction.
func (j *Job) scopes(ctx context.Context) ([]scopeStart, error) {
	rows, err := j.conn.Query(ctx, "SELECT model, source, min(ts) FROM predictions GROUP BY model, source ORDER BY model, source")
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	defer rows.Close()
	var out []scopeStart
	for rows.Next() {
		var s scopeStart
		if err := rows.Scan(&s.Model, &s.Source, &s.first); err != nil {
			return nil, fmt.Errorf("scan scope: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// classCounts counts distinct events per predicted class; uniqExact makes a
// redelivered event count once even before the table merges it away.
func classCounts(ctx context.Context, conn driver.Conn, sc Scope, w Window) (map[string]float64, error) {
	rows, err := conn.Query(ctx, `SELECT predicted_class, uniqExact(event_id) FROM predictions
		WHERE model = ? AND source = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)
		GROUP BY predicted_class`, sc.Model, sc.Source, w.From.Unix(), w.To.Unix())
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

// latestEmbedder picks the embedding space to compare in: the newest one the
// scope has. Both windows are then read from that space only, because
// vectors of different embedders are not comparable.
func latestEmbedder(ctx context.Context, conn driver.Conn, sc Scope) (string, error) {
	rows, err := conn.Query(ctx, `SELECT embedder FROM embeddings WHERE model = ? AND source = ?
		ORDER BY embedded_at DESC LIMIT 1`, sc.Model, sc.Source)
	if err != nil {
		return "", fmt.Errorf("latest embedder: %w", err)
	}
	defer rows.Close()
	var e string
	if rows.Next() {
		if err := rows.Scan(&e); err != nil {
			return "", fmt.Errorf("scan embedder: %w", err)
		}
	}
	return e, rows.Err()
}

// embeddings reads up to limit vectors of a window. Ordering by a hash of
// event_id makes the subsample a deterministic pseudo-random one rather
// than the oldest rows; LIMIT 1 BY event_id drops redelivered duplicates.
func embeddings(ctx context.Context, conn driver.Conn, sc Scope, embedder string, w Window, limit int) ([][]float32, error) {
	rows, err := conn.Query(ctx, `SELECT embedding FROM (
			SELECT event_id, embedding FROM embeddings
			WHERE embedder = ? AND model = ? AND source = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)
			LIMIT 1 BY event_id)
		ORDER BY cityHash64(event_id) LIMIT ?`,
		embedder, sc.Model, sc.Source, w.From.Unix(), w.To.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	defer rows.Close()
	var out [][]float32
	for rows.Next() {
		var v []float32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan embedding: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func insertReports(ctx context.Context, conn driver.Conn, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO drift_reports")
	if err != nil {
		return fmt.Errorf("prepare insert of %d drift reports: %w", len(reports), err)
	}
	for _, r := range reports {
		flagged := uint8(0)
		if r.Flagged() {
			flagged = 1
		}
		if err := batch.Append(r.RunAt.UTC(), r.Model, r.Source, r.Embedder, r.Test, r.Status,
			r.Statistic, r.PValue, r.Effect, r.MinEffect, r.Alpha, flagged,
			uint32(r.NRef), uint32(r.NCur), r.Ref.From.UTC(), r.Ref.To.UTC(), r.Cur.From.UTC(), r.Cur.To.UTC(),
			r.Detail); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append drift report: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift reports: %w", len(reports), err)
	}
	return nil
}

// topShifts names the classes whose share moved most, for the report detail.
func topShifts(ref, cur map[string]float64, n int) string {
	rt, ct := float64(total(ref)), float64(total(cur))
	type shift struct {
		class string
		delta float64
	}
	seen := make(map[string]bool)
	var shifts []shift
	for _, m := range []map[string]float64{ref, cur} {
		for c := range m {
			if !seen[c] {
				seen[c] = true
				shifts = append(shifts, shift{c, cur[c]/ct - ref[c]/rt})
			}
		}
	}
	sort.Slice(shifts, func(a, b int) bool {
		da, db := abs(shifts[a].delta), abs(shifts[b].delta)
		if da != db {
			return da > db
		}
		return shifts[a].class < shifts[b].class
	})
	var parts []string
	for i := 0; i < n && i < len(shifts); i++ {
		parts = append(parts, fmt.Sprintf("%s %+.1f%%", shifts[i].class, 100*shifts[i].delta))
	}
	return strings.Join(parts, ", ")
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
