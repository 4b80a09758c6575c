package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/event"
)

// Store reads and appends the queue's ClickHouse logs.
type Store struct {
	conn driver.Conn
}

// NewStore returns a store on conn (a migrated lookout database).
func NewStore(conn driver.Conn) *Store { return &Store{conn: conn} }

// InsertPicks appends picked items to al_picks: this is how items enter the
// queue.
func InsertPicks(ctx context.Context, conn driver.Conn, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO al_picks")
	if err != nil {
		return fmt.Errorf("prepare insert of %d picks: %w", len(items), err)
	}
	for _, it := range items {
		err := batch.Append(it.EventID, it.SelectionID, it.PickedAt.UTC(), uint64(it.PickedAt.UnixMilli()), it.Rank,
			it.Model, it.ModelVersion, it.Source, it.Task, it.Arm, it.ImageURI, it.PredictedClass,
			nonNil(it.ProbClasses), nonNil(it.ProbValues), nonNil(it.BoxClasses), nonNil(it.BoxScores), nonNil(it.BoxXYXY),
			it.Embedder, float32(it.Score), nonNil(it.Reasons), nonNil(it.ScoreNames), nonNil(it.ScoreValues))
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append pick %q: %w", it.EventID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert batch of %d picks: %w", len(items), err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

const pickColumns = `event_id, selection_id, picked_ms, rank, model, model_version, source, task, arm, image_uri,
	predicted_class, prob_classes, prob_values, box_classes, box_scores, box_xyxy, embedder, score, reasons,
	score_names, score_values`

// Picks reads the picks stored at or after since (all with the zero time),
// oldest first, one per event_id.
func (s *Store) Picks(ctx context.Context, since time.Time) ([]Item, error) {
	return QueryPicks(ctx, s.conn, "picked_ms >= ?", uint64(max(since.UnixMilli(), 0)))
}

// QueryPicks reads picks matching where (a SQL condition with ? arguments),
// oldest first, one per event_id.
func QueryPicks(ctx context.Context, conn driver.Conn, where string, args ...any) ([]Item, error) {
	rows, err := conn.Query(ctx, "SELECT "+pickColumns+" FROM al_picks WHERE "+where+
		" ORDER BY picked_ms, rank, event_id LIMIT 1 BY event_id", args...)
	if err != nil {
		return nil, fmt.Errorf("read picks: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		var ms uint64
		var score float32
		if err := rows.Scan(&it.EventID, &it.SelectionID, &ms, &it.Rank, &it.Model, &it.ModelVersion, &it.Source,
			&it.Task, &it.Arm, &it.ImageURI, &it.PredictedClass, &it.ProbClasses, &it.ProbValues, &it.BoxClasses,
			&it.BoxScores, &it.BoxXYXY, &it.Embedder, &score, &it.Reasons, &it.ScoreNames, &it.ScoreValues); err != nil {
			return nil, fmt.Errorf("scan pick: %w", err)
		}
		it.PickedAt = time.UnixMilli(int64(ms)).UTC()
		it.Score = float64(score)
		out = append(out, it)
	}
	return out, rows.Err()
}

// Append writes queue events in one batch. It returns only once ClickHouse
// has them, so the caller may then act on them.
func (s *Store) Append(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO al_queue_events")
	if err != nil {
		return fmt.Errorf("prepare insert of %d queue events: %w", len(evs), err)
	}
	for _, ev := range evs {
		classes, scores, xyxy := flattenBoxes(ev.Boxes)
		var until uint64
		if !ev.LeaseUntil.IsZero() {
			until = uint64(ev.LeaseUntil.UnixMilli())
		}
		if err := batch.Append(ev.Seq, ev.At.UTC(), uint64(ev.At.UnixMilli()), ev.EventID, ev.Kind, ev.Annotator,
			ev.LeaseID, until, ev.Label, classes, scores, xyxy, ev.Reason, ev.Owner); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append queue event %d: %w", ev.Seq, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert batch of %d queue events: %w", len(evs), err)
	}
	return nil
}

// Events reads the whole transition log in seq order.
func (s *Store) Events(ctx context.Context) ([]Event, error) {
	rows, err := s.conn.Query(ctx, `SELECT seq, at_ms, event_id, kind, annotator, lease_id, lease_until_ms, label,
		box_classes, box_scores, box_xyxy, reason, owner FROM al_queue_events ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read queue events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var at, until uint64
		var classes []string
		var scores []float32
		var xyxy [][]float32
		if err := rows.Scan(&ev.Seq, &at, &ev.EventID, &ev.Kind, &ev.Annotator, &ev.LeaseID, &until, &ev.Label,
			&classes, &scores, &xyxy, &ev.Reason, &ev.Owner); err != nil {
			return nil, fmt.Errorf("scan queue event: %w", err)
		}
		ev.At = time.UnixMilli(int64(at)).UTC()
		if until > 0 {
			ev.LeaseUntil = time.UnixMilli(int64(until)).UTC()
		}
		ev.Boxes = boxes(classes, scores, xyxy)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// Heartbeat records that owner holds the queue now.
func (s *Store) Heartbeat(ctx context.Context, owner, host string, now time.Time) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO al_owners")
	if err != nil {
		return fmt.Errorf("prepare owner heartbeat: %w", err)
	}
	if err := batch.Append(owner, host, now.UTC(), uint64(now.UnixMilli())); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("append owner heartbeat: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("owner heartbeat: %w", err)
	}
	return nil
}

// Resign records that owner stopped cleanly (a heartbeat with an empty
// host), so a successor need not wait for the heartbeat to go stale.
func (s *Store) Resign(ctx context.Context, owner string, now time.Time) error {
	return s.Heartbeat(ctx, owner, "", now)
}

// OtherOwner returns another owner (and its host) whose latest heartbeat is
// after since and who has not resigned, if any.
func (s *Store) OtherOwner(ctx context.Context, me string, since time.Time) (string, string, bool, error) {
	rows, err := s.conn.Query(ctx, `SELECT owner, argMax(host, at_ms) AS h, max(at_ms) AS last_ms FROM al_owners
		WHERE owner != ? GROUP BY owner HAVING last_ms >= ? AND h != '' ORDER BY last_ms DESC LIMIT 1`,
		me, uint64(since.UnixMilli()))
	if err != nil {
		return "", "", false, fmt.Errorf("read queue owners: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return "", "", false, rows.Err()
	}
	var owner, host string
	var last uint64
	if err := rows.Scan(&owner, &host, &last); err != nil {
		return "", "", false, fmt.Errorf("scan queue owner: %w", err)
	}
	return owner, host, true, nil
}

func flattenBoxes(bs []event.Box) ([]string, []float32, [][]float32) {
	classes := make([]string, len(bs))
	scores := make([]float32, len(bs))
	xyxy := make([][]float32, len(bs))
	for i, b := range bs {
		classes[i], scores[i] = b.Class, float32(b.Score)
		xyxy[i] = []float32{float32(b.XYXY[0]), float32(b.XYXY[1]), float32(b.XYXY[2]), float32(b.XYXY[3])}
	}
	return classes, scores, xyxy
}

func boxes(classes []string, scores []float32, xyxy [][]float32) []event.Box {
	if len(classes) == 0 {
		return nil
	}
	out := make([]event.Box, len(classes))
	for i := range classes {
		out[i].Class = classes[i]
		if i < len(scores) {
			out[i].Score = float64(scores[i])
		}
		if i < len(xyxy) && len(xyxy[i]) == 4 {
			for k := range 4 {
				out[i].XYXY[k] = float64(xyxy[i][k])
			}
		}
	}
	return out
}
