package embed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/event"
)

// BackfillOptions select the past predictions to embed.
type BackfillOptions struct {
	// Since and Until bound the events' ts: Since ≤ ts < Until.
	Since, Until time.Time
	// Sources and Models restrict the events; empty means all.
	Sources, Models []string
	// Rate samples the events by event_id hash like the live stage (weight
	// 1/Rate); 0 or 1 embeds every event.
	Rate float64
	// Page is how many events are read from ClickHouse at a time (and handed
	// to Store in batches of at most 256); 0 means 1024.
	Page int
}

// BackfillProgress is reported after every stored batch.
type BackfillProgress struct {
	// Total is the number of events in range still without an embedding for
	// this model when the backfill started (before sampling).
	Total int
	// Seen events were read, Embedded stored, Unsampled left out by Rate,
	// Failed had an image that could not be fetched or decoded (counted by
	// reason in lookout_embed_image_failures_total).
	Seen, Embedded, Unsampled, Failed int
	Elapsed                           time.Duration
}

// Backfill embeds the predictions stored in ClickHouse that have no
// embedding from this stage's model yet, in (ts, event_id) order, reading
// them page by page so a long run holds no query open. It is idempotent:
// a rerun (or a run interrupted and restarted) only embeds what is still
// missing, and the embeddings table collapses any duplicate by event_id.
func Backfill(ctx context.Context, s *Stage, conn driver.Conn, o BackfillOptions, progress func(BackfillProgress)) (BackfillProgress, error) {
	if !o.Until.After(o.Since) {
		return BackfillProgress{}, errors.New("backfill: until must be after since")
	}
	if o.Page <= 0 {
		o.Page = 1024
	}
	rate := o.Rate
	if rate <= 0 || rate > 1 {
		rate = 1
	}
	where, args := backfillFilter(o, s.model.ID())
	var p BackfillProgress
	start := time.Now()
	total, err := countRows(ctx, conn, "SELECT uniqExact(event_id) FROM predictions WHERE "+where, args...)
	if err != nil {
		return p, fmt.Errorf("backfill: count: %w", err)
	}
	p.Total = int(total)
	var after struct {
		ms uint64
		id string
	}
	for {
		page, err := readPage(ctx, conn, where, args, after.ms, after.id, o.Page)
		if err != nil {
			return p, err
		}
		if len(page) == 0 {
			return p, nil
		}
		last := page[len(page)-1]
		after.ms, after.id = uint64(last.TS.UnixMilli()), last.EventID
		p.Seen += len(page)
		items := page[:0]
		for _, it := range page {
			if Sampled(it.EventID, rate) {
				it.Weight = 1 / rate
				items = append(items, it)
			}
		}
		p.Unsampled += len(page) - len(items)
		for lo := 0; lo < len(items); lo += 256 {
			batch := items[lo:min(lo+256, len(items))]
			before := s.Stats().Insert.Images
			if err := s.Store(ctx, batch); err != nil {
				return p, fmt.Errorf("backfill: %w", err)
			}
			n := int(s.Stats().Insert.Images - before)
			p.Embedded += n
			p.Failed += len(batch) - n
			p.Elapsed = time.Since(start)
			progress(p)
		}
	}
}

// backfillFilter is the WHERE clause shared by the count and the pages.
// Events already embedded by this model are excluded with NOT IN, which
// ClickHouse 18.16 evaluates as a hash set of the subquery's ids.
func backfillFilter(o BackfillOptions, embedder string) (string, []any) {
	conds := []string{"ts >= toDateTime(?)", "ts < toDateTime(?)"}
	args := []any{o.Since.Unix(), o.Until.Unix()}
	if len(o.Sources) > 0 {
		conds = append(conds, "has(?, source)")
		args = append(args, o.Sources)
	}
	if len(o.Models) > 0 {
		conds = append(conds, "has(?, model)")
		args = append(args, o.Models)
	}
	conds = append(conds, `event_id NOT IN (SELECT event_id FROM embeddings
		WHERE embedder = ? AND ts >= toDateTime(?) AND ts < toDateTime(?))`)
	args = append(args, embedder, o.Since.Unix(), o.Until.Unix())
	return strings.Join(conds, " AND "), args
}

func countRows(ctx context.Context, conn driver.Conn, query string, args ...any) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// readPage reads the next page of events after (afterMS, afterID) in
// (ts_ms, event_id) order, one row per event_id.
func readPage(ctx context.Context, conn driver.Conn, where string, args []any, afterMS uint64, afterID string, limit int) ([]Item, error) {
	q := `SELECT event_id, ts_ms, model, model_version, source, task, image_uri, predicted_class,
		prob_classes, prob_values, box_classes, box_scores
	FROM predictions
	WHERE ` + where + ` AND (ts_ms > ? OR (ts_ms = ? AND event_id > ?))
	ORDER BY ts_ms, event_id
	LIMIT 1 BY event_id
	LIMIT ?`
	rows, err := conn.Query(ctx, q, append(append([]any{}, args...), afterMS, afterMS, afterID, limit)...)
	if err != nil {
		return nil, fmt.Errorf("backfill: read predictions: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var (
			it                  Item
			ms                  uint64
			classes, boxClasses []string
			values, boxScores   []float32
		)
		p := &it.Prediction
		if err := rows.Scan(&p.EventID, &ms, &p.Model, &p.ModelVersion, &p.Source, &p.Task, &p.ImageURI,
			&p.PredictedClass, &classes, &values, &boxClasses, &boxScores); err != nil {
			return nil, fmt.Errorf("backfill: scan prediction: %w", err)
		}
		p.TS = time.UnixMilli(int64(ms)).UTC()
		if len(classes) > 0 && len(classes) == len(values) {
			m := make(map[string]float64, len(classes))
			for i, c := range classes {
				m[c] = float64(values[i])
			}
			p.Probs = event.ProbsOf(m)
		}
		for i := range min(len(boxClasses), len(boxScores)) {
			p.Boxes = append(p.Boxes, event.Box{Class: boxClasses[i], Score: float64(boxScores[i])})
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backfill: read predictions: %w", err)
	}
	return out, nil
}
