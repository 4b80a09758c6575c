package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/stream"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestClickHouseOutageLosesNothing stops the consumer's ClickHouse in the
// middle of the stream and starts it again: the consumer holds its offsets,
// retries, and stores every event exactly once when the server is back.
func TestClickHouseOutageLosesNothing(t *testing.T) {
	h := newHarness(t)
	ch := testenv.StartPrivateClickHouse(t)
	cfg := ch.Config()
	ctx := context.Background()
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := store.Migrate(ctx, db, cfg.Database, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		base := time.Now().Add(-time.Minute)
		var lines []string
		for i := from; i < to; i++ {
			lines = append(lines, fmt.Sprintf("ev-%05d\t%s", i, prediction(i, base)))
		}
		testenv.KcatProduce(t, h.broker, "predictions", lines)
	}
	produce(0, 500)

	reg := prometheus.NewRegistry()
	metrics := stream.NewMetrics(reg)
	r, err := h.conn.Reader("predictions", "outage-group")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		stage := ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil))
		opts := stream.Options{BatchSize: 200, BatchesPerWrite: 3, FlushInterval: 100 * time.Millisecond, Metrics: metrics,
			RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Log: testenv.Logger(t)}
		if err := stream.Run(runCtx, r, stage, opts); err != nil {
			t.Error(err)
		}
	}()
	distinct := func() uint64 {
		var n uint64
		if err := db.QueryRow(ctx, "SELECT uniqExact(event_id) FROM predictions").Scan(&n); err != nil {
			return 0 // the server is down
		}
		return n
	}
	testenv.Eventually(t, 30*time.Second, "the first 500 rows", func() bool { return distinct() == 500 })

	ch.Stop()
	produce(500, 1000)
	testenv.Eventually(t, 30*time.Second, "store retries during the outage", func() bool {
		return testutil.ToFloat64(metrics.Retries("predictions", "store")) > 0
	})
	ch.Start()
	testenv.Eventually(t, 60*time.Second, "all 1000 rows after the outage", func() bool { return distinct() == 1000 })
	cancel()
	wg.Wait()
	if n := testenv.Count(t, db, "SELECT count() FROM predictions FINAL"); n != 1000 {
		t.Fatalf("rows as readers see them = %d, want 1000", n)
	}
}
