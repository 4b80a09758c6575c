package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func TestMigrateIsIdempotentAndCreatesTables(t *testing.T) {
	conn, cfg := testenv.ClickHouse(t) // applies every migration once
	ctx := context.Background()
	n, err := store.Migrate(ctx, conn, cfg.Database, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second migrate applied %d migrations, want 0", n)
	}
	for _, table := range []string{"predictions", "embeddings", "labels", "drift_reports", "schema_migrations"} {
		got := testenv.Count(t, conn, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", cfg.Database, table)
		if got != 1 {
			t.Errorf("table %s missing", table)
		}
	}
	if v := testenv.Count(t, conn, "SELECT toUInt64(max(version)) FROM schema_migrations"); int(v) != store.Version() {
		t.Fatalf("recorded version %d, build has %d", v, store.Version())
	}
}

func TestMigrationsParse(t *testing.T) {
	migs, err := store.Migrations("db1")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 || migs[0].Version != 1 {
		t.Fatalf("migrations = %+v", migs)
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if strings.Contains(s, "{{") || strings.HasSuffix(s, ";") || !strings.Contains(s, "db1.") {
				t.Errorf("migration %d statement not rendered: %q", m.Version, s)
			}
		}
	}
}
