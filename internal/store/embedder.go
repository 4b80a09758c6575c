package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// LatestEmbedder returns the embedder of the newest embeddings that match
// where (an SQL condition with ? placeholders for args; "1" for all), or ""
// when there are none. Vectors of different embedders live in different
// spaces, so every reader compares within the one this returns.
func LatestEmbedder(ctx context.Context, conn driver.Conn, where string, args ...any) (string, error) {
	rows, err := conn.Query(ctx, "SELECT embedder FROM embeddings WHERE "+where+" ORDER BY embedded_at DESC LIMIT 1", args...)
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
