package drift

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Reference is a pinned reference window: the scope it serves, the scope
// whose data forms it (itself, or another scope it was imported from, e.g.
// the previous model version or a healthy camera) and the time range.
type Reference struct {
	Scope     Scope
	From      Scope
	Window    Window
	Note      string
	CreatedBy string
	CreatedAt time.Time
}

// ErrNoReference is returned when a scope has no pinned reference.
var ErrNoReference = errors.New("no pinned reference for this scope")

// PinReference stores ref, replacing any pinned reference of its scope.
// The row carries a nanosecond version so the newest pin wins even within
// one second.
func PinReference(ctx context.Context, conn driver.Conn, ref Reference) error {
	if ref.Scope.Model == "" || ref.Scope.Source == "" {
		return errors.New("pin reference: model and source are required")
	}
	if !ref.Window.From.Before(ref.Window.To) {
		return fmt.Errorf("pin reference: empty time range %s … %s", ref.Window.From, ref.Window.To)
	}
	if ref.From == (Scope{}) {
		ref.From = ref.Scope
	}
	if ref.CreatedAt.IsZero() {
		ref.CreatedAt = time.Now()
	}
	return writeReference(ctx, conn, ref, false)
}

// DeleteReference removes the pinned reference of sc (the scope falls back
// to the configured reference mode). It is not an error if none exists.
func DeleteReference(ctx context.Context, conn driver.Conn, sc Scope) error {
	return writeReference(ctx, conn, Reference{Scope: sc, CreatedAt: time.Now()}, true)
}

func writeReference(ctx context.Context, conn driver.Conn, ref Reference, deleted bool) error {
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_references (model, model_version, source,
		from_model, from_version, from_source, ref_from, ref_to, note, created_by, created_at, version, deleted)`)
	if err != nil {
		return fmt.Errorf("prepare reference insert: %w", err)
	}
	del := uint8(0)
	if deleted {
		del = 1
	}
	if err := batch.Append(ref.Scope.Model, ref.Scope.Version, ref.Scope.Source,
		ref.From.Model, ref.From.Version, ref.From.Source,
		unixTime(ref.Window.From), unixTime(ref.Window.To), ref.Note, ref.CreatedBy,
		ref.CreatedAt.UTC().Truncate(time.Second), uint64(ref.CreatedAt.UnixNano()), del); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("append reference: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("store reference for %s: %w", ref.Scope, err)
	}
	return nil
}

// unixTime keeps the zero time representable in a DateTime column.
func unixTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

// ListReferences returns every live pinned reference. The newest row of a
// scope wins (argMax on version), so it is correct before ClickHouse has
// merged replaced rows away.
func ListReferences(ctx context.Context, conn driver.Conn) ([]Reference, error) {
	rows, err := conn.Query(ctx, `SELECT model, model_version, source,
			argMax(from_model, version), argMax(from_version, version), argMax(from_source, version),
			argMax(ref_from, version), argMax(ref_to, version), argMax(note, version),
			argMax(created_by, version), argMax(created_at, version), argMax(deleted, version)
		FROM drift_references GROUP BY model, model_version, source
		ORDER BY model, model_version, source`)
	if err != nil {
		return nil, fmt.Errorf("list references: %w", err)
	}
	defer rows.Close()
	var out []Reference
	for rows.Next() {
		var r Reference
		var deleted uint8
		if err := rows.Scan(&r.Scope.Model, &r.Scope.Version, &r.Scope.Source,
			&r.From.Model, &r.From.Version, &r.From.Source, &r.Window.From, &r.Window.To,
			&r.Note, &r.CreatedBy, &r.CreatedAt, &deleted); err != nil {
			return nil, fmt.Errorf("scan reference: %w", err)
		}
		if deleted == 0 {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// GetReference returns the pinned reference of sc, or ErrNoReference.
func GetReference(ctx context.Context, conn driver.Conn, sc Scope) (Reference, error) {
	refs, err := ListReferences(ctx, conn)
	if err != nil {
		return Reference{}, err
	}
	if r := pinFor(refs, sc); r != nil {
		return *r, nil
	}
	return Reference{}, fmt.Errorf("%s: %w", sc, ErrNoReference)
}

func pinFor(refs []Reference, sc Scope) *Reference {
	for i := range refs {
		if refs[i].Scope == sc {
			return &refs[i]
		}
	}
	return nil
}
