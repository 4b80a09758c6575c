// Package testenv gives integration tests the real components they run
// against: the project's local ClickHouse (started by scripts/setup.sh), an
// in-process Kafka wire-protocol broker, the ONNX Runtime library and the
// committed model. A missing component fails the test with the command that
// provides it; nothing is skipped, so CI cannot pass by not testing.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/devkafka"
	"github.com/lookout-dev/lookout/internal/store"
)

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// ORTLibrary returns the ONNX Runtime shared library path.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LOOKOUT_ORT_LIBRARY")
	if p == "" {
		p = filepath.Join(RepoRoot(t), ".lookout", "ort", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ONNX Runtime library not found at %s: run `make setup`", p)
	}
	return p
}

// ModelPath returns the committed tiny DINOv2-contract model.
func ModelPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "models", "dinov2-tiny-random.onnx")
}

// ClickHouseConfig returns the connection settings of the local server
// (LOOKOUT_CLICKHOUSE_ADDR, default 127.0.0.1:19000) with a fresh, unique
// database name, so tests never see each other's rows.
func ClickHouseConfig(t testing.TB) config.ClickHouse {
	t.Helper()
	cfg := config.Default().ClickHouse
	if addr := os.Getenv("LOOKOUT_CLICKHOUSE_ADDR"); addr != "" {
		cfg.Addr = strings.Split(addr, ",")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.Database = "lookout_test_" + hex.EncodeToString(b)
	return cfg
}

// ClickHouse opens a connection to a fresh migrated database that is dropped
// when the test ends.
func ClickHouse(t testing.TB) (driver.Conn, config.ClickHouse) {
	t.Helper()
	cfg := ClickHouseConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("ClickHouse at %v: %v (run `make setup` to start the local server)", cfg.Addr, err)
	}
	if _, err := store.Migrate(ctx, conn, cfg.Database, Logger(t)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		conn.Close()
	})
	return conn, cfg
}

// Kafka starts an in-process broker with the given topics (3 partitions
// each) on a free loopback port and returns its address.
func Kafka(t testing.TB, topics ...string) string {
	t.Helper()
	b, err := devkafka.Start(devkafka.Options{Listen: "127.0.0.1:0", Partitions: 3, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()[0]
}

// Logger returns a logger that writes through t.Log at debug level when
// LOOKOUT_TEST_LOG is set and is quiet otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("LOOKOUT_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond every 100 ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Count runs a single-number query.
func Count(t testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
