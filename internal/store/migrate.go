package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change. Statements are idempotent
// (IF NOT EXISTS) so two instances starting at once cannot conflict.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations returns the embedded migrations in version order, with {{db}}
// replaced by database.
func Migrations(database string) ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		m, err := parseMigration(name, database)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func parseMigration(path, database string) (Migration, error) {
	base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
	num, name, ok := strings.Cut(base, "_")
	version, err := strconv.Atoi(num)
	if !ok || err != nil {
		return Migration{}, fmt.Errorf("migration %s: name must be NNN_description.sql", path)
	}
	data, err := migrationFiles.ReadFile(path)
	if err != nil {
		return Migration{}, err
	}
	m := Migration{Version: version, Name: name}
	for _, stmt := range splitStatements(string(data)) {
		m.Statements = append(m.Statements, strings.ReplaceAll(stmt, "{{db}}", database))
	}
	return m, nil
}

// splitStatements cuts a file at semicolons that end a line; comment lines are
// dropped because ClickHouse 18.16 rejects a query that is only a comment.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Migrate applies the migrations that database has not recorded yet and
// returns how many it applied.
func Migrate(ctx context.Context, conn driver.Conn, database string, log *slog.Logger) (int, error) {
	create := "CREATE TABLE IF NOT EXISTS " + database + ".schema_migrations " +
		"(version UInt32, name String, applied_at DateTime) " +
		"ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
	if err := conn.Exec(ctx, create); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return 0, err
	}
	migs, err := Migrations(database)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range migs {
		if applied[m.Version] {
			continue
		}
		if err := apply(ctx, conn, database, m); err != nil {
			return n, err
		}
		log.Info("schema migration applied", "version", m.Version, "name", m.Name)
		n++
	}
	return n, nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+database+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := make(map[int]bool)
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan schema_migrations: %w", err)
		}
		out[int(v)] = true
	}
	return out, rows.Err()
}

func apply(ctx context.Context, conn driver.Conn, database string, m Migration) error {
	for i, stmt := range m.Statements {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migration %03d_%s statement %d: %w", m.Version, m.Name, i+1, err)
		}
	}
	// A native batch, not INSERT … VALUES through Exec: ClickHouse 18.16 waits
	// for a data block after such an Exec and the call never returns.
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".schema_migrations")
	if err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	if err := batch.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	return nil
}

// Version returns the highest migration version embedded in this build.
func Version() int {
	migs, err := Migrations("x")
	if err != nil || len(migs) == 0 {
		return 0
	}
	return migs[len(migs)-1].Version
}

// OpenMigrated opens the database like Open and brings its schema up to
// date, the start of every command that reads or writes tables.
func OpenMigrated(ctx context.Context, cfg config.ClickHouse, log *slog.Logger) (driver.Conn, error) {
	conn, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, conn, cfg.Database, log); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
