package rollout

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseAccuracy joins a rollout's routed predictions with their labels.
// Shadow predictions carry the stable event's id plus "-shadow", so they are
// matched to the same label and count for the canary.
type ClickHouseAccuracy struct {
	conn     driver.Conn
	database string
}

// NewClickHouseAccuracy reads from the predictions and labels tables of database.
func NewClickHouseAccuracy(conn driver.Conn, database string) *ClickHouseAccuracy {
	return &ClickHouseAccuracy{conn: conn, database: database}
}

// Accuracy returns labelled counts per arm ("stable", "canary").
func (a *ClickHouseAccuracy) Accuracy(ctx context.Context, model, rolloutID string) (map[string]Labelled, error) {
	// Plain subqueries and USING: the shapes ClickHouse 18.16 joins.
	q := `SELECT arm2, count(), sum(predicted_class = label) FROM (
		SELECT if(arm = 'shadow', substring(event_id, 1, length(event_id) - 7), event_id) AS event_id,
		       if(arm = 'shadow', 'canary', arm) AS arm2, predicted_class
		FROM ` + a.database + `.predictions FINAL WHERE model = ? AND rollout_id = ? AND arm != ''
	) ANY INNER JOIN (
		SELECT event_id, argMax(label, ts_ms) AS label FROM ` + a.database + `.labels GROUP BY event_id
	) USING event_id GROUP BY arm2`
	rows, err := a.conn.Query(ctx, q, model, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("query labelled accuracy of rollout %s: %w", rolloutID, err)
	}
	defer rows.Close()
	out := map[string]Labelled{}
	for rows.Next() {
		var arm string
		var n, correct uint64
		if err := rows.Scan(&arm, &n, &correct); err != nil {
			return nil, fmt.Errorf("scan accuracy: %w", err)
		}
		out[arm] = Labelled{N: int(n), Correct: int(correct)}
	}
	return out, rows.Err()
}
