package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/stream"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// BenchmarkRecoveryAfterOutage measures what an SRE sees after a ClickHouse
// outage: a backlog of LOOKOUT_BENCH_BACKLOG events (default 1,000,000)
// waits in Kafka while a private ClickHouse is down for
// LOOKOUT_BENCH_OUTAGE_S seconds (default 60) and the consumer, with the
// service's default batching and retry settings, keeps retrying; then the
// server comes back. Reported: seconds from the restart until every event
// is stored, and the drain rate.
//
//	go test ./ingest -run '^$' -bench RecoveryAfterOutage -benchtime 1x -timeout 20m
func BenchmarkRecoveryAfterOutage(b *testing.B) {
	backlog := envInt("LOOKOUT_BENCH_BACKLOG", 1_000_000)
	outage := time.Duration(envInt("LOOKOUT_BENCH_OUTAGE_S", 60)) * time.Second
	ctx := context.Background()
	ch := testenv.StartPrivateClickHouse(b)
	cfg := ch.Config()
	db, err := store.OpenMigrated(ctx, cfg, testenv.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	kcfg := config.Default().Kafka
	kcfg.Brokers = []string{testenv.Kafka(b, "predictions")}
	kc, err := kafkaconn.New(kcfg)
	if err != nil {
		b.Fatal(err)
	}
	produceBacklog(b, kc, backlog)
	for b.Loop() {
		ch.Stop()
		stop := runIngest(b, kc, db)
		time.Sleep(outage)
		ch.Start()
		restarted := time.Now()
		var resumed time.Duration
		testenv.Eventually(b, 15*time.Minute, "the backlog stored", func() bool {
			var n uint64
			if err := db.QueryRow(ctx, "SELECT count() FROM predictions").Scan(&n); err != nil {
				return false
			}
			if n > 0 && resumed == 0 {
				resumed = time.Since(restarted)
			}
			return int(n) >= backlog
		})
		recovery := time.Since(restarted)
		stop()
		if n := testenv.Count(b, db, "SELECT uniqExact(event_id) FROM predictions"); int(n) != backlog {
			b.Fatalf("%d distinct events stored, want %d", n, backlog)
		}
		b.ReportMetric(recovery.Seconds(), "s-to-recover")
		b.ReportMetric(resumed.Seconds(), "s-to-first-insert")
		b.ReportMetric(float64(backlog)/(recovery-resumed).Seconds(), "drain-events/s")
	}
}

// runIngest consumes predictions into db with the service's defaults until
// stop is called.
func runIngest(b *testing.B, kc *kafkaconn.Conn, db driver.Conn) (stop func()) {
	d := config.Default()
	r, err := kc.Reader("predictions", fmt.Sprintf("recovery-%d", time.Now().UnixNano()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		stage := ingest.Predictions(db, &event.Decoder{Limits: d.Ingest.Limits}, ingest.NewMetrics(nil))
		opts := stream.Options{BatchSize: d.Ingest.BatchSize, BatchesPerWrite: d.Ingest.BatchesPerInsert, FlushInterval: d.Ingest.FlushInterval, Log: testenv.Logger(b)}
		if err := stream.Run(ctx, r, stage, opts); err != nil {
			b.Error(err)
		}
	}()
	return func() { cancel(); wg.Wait(); r.Close() }
}

func produceBacklog(b *testing.B, kc *kafkaconn.Conn, n int) {
	w := kc.Writer("predictions")
	w.BatchSize = 5000
	defer w.Close()
	base := time.Now().Add(-time.Hour)
	msgs := make([]kafka.Message, 0, 20000)
	for i := range n {
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "ev-%09d", i), Value: []byte(prediction(i, base))})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
