package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Audit is the append-only log of state changes.
type Audit interface {
	// Append stores e durably before the change takes effect.
	Append(ctx context.Context, e Entry) error
	// Latest returns the newest entry's state, false when the log is empty.
	Latest(ctx context.Context) (State, bool, error)
	// List returns the newest limit entries, newest first.
	List(ctx context.Context, limit int) ([]Entry, error)
}

// ClickHouseAudit keeps the log in the canary_audit table (migration 002).
type ClickHouseAudit struct {
	conn     driver.Conn
	database string
}

// NewClickHouseAudit returns the audit log in database.
func NewClickHouseAudit(conn driver.Conn, database string) *ClickHouseAudit {
	return &ClickHouseAudit{conn: conn, database: database}
}

// Append inserts one row through a prepared batch (an INSERT … VALUES via
// Exec hangs on ClickHouse 18.16).
func (a *ClickHouseAudit) Append(ctx context.Context, e Entry) error {
	state, err := json.Marshal(e.State)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	metrics := []byte("")
	if e.Metrics != nil {
		if metrics, err = json.Marshal(e.Metrics); err != nil {
			return fmt.Errorf("encode metrics: %w", err)
		}
	}
	b, err := a.conn.PrepareBatch(ctx, "INSERT INTO "+a.database+".canary_audit")
	if err != nil {
		return fmt.Errorf("prepare audit insert: %w", err)
	}
	at := e.At.UTC()
	if err := b.Append(e.Seq, at, uint64(at.UnixMilli()), e.Actor, e.Action, e.RolloutID, e.RequestID, e.Reason,
		e.Stable, e.Canary, e.Percent, string(metrics), string(state)); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append audit row: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert audit entry %d (%s): %w", e.Seq, e.Action, err)
	}
	return nil
}

// Latest reads the state stored with the highest sequence number.
func (a *ClickHouseAudit) Latest(ctx context.Context) (State, bool, error) {
	rows, err := a.conn.Query(ctx, "SELECT state FROM "+a.database+".canary_audit ORDER BY seq DESC, ts_ms DESC LIMIT 1")
	if err != nil {
		return State{}, false, fmt.Errorf("read latest audit entry: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return State{}, false, rows.Err()
	}
	var raw string
	if err := rows.Scan(&raw); err != nil {
		return State{}, false, fmt.Errorf("scan audit state: %w", err)
	}
	var s State
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return State{}, false, fmt.Errorf("decode audit state: %w", err)
	}
	return s, true, nil
}

// List returns the newest entries first.
func (a *ClickHouseAudit) List(ctx context.Context, limit int) ([]Entry, error) {
	rows, err := a.conn.Query(ctx, "SELECT seq, ts_ms, actor, action, rollout_id, request_id, reason, stable, canary, "+
		"canary_percent, metrics FROM "+a.database+".canary_audit ORDER BY seq DESC, ts_ms DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ms uint64
		var metrics string
		if err := rows.Scan(&e.Seq, &ms, &e.Actor, &e.Action, &e.RolloutID, &e.RequestID, &e.Reason, &e.Stable,
			&e.Canary, &e.Percent, &metrics); err != nil {
			return nil, fmt.Errorf("scan audit entry: %w", err)
		}
		e.At = time.UnixMilli(int64(ms)).UTC()
		if metrics != "" {
			e.Metrics = &Analysis{}
			_ = json.Unmarshal([]byte(metrics), e.Metrics)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
