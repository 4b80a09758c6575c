package ingest_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/devkafka"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/stream"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestBrokerRestart restarts the (persistent) broker under a running
// consumer: the consumer reconnects by itself and stores what follows.
func TestBrokerRestart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	opts := devkafka.Options{Listen: addr, DataDir: t.TempDir(), Partitions: 2, Topics: []string{"predictions", "predictions-dlq"}}
	b, err := devkafka.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := testenv.ClickHouse(t)
	kcfg := config.Default().Kafka
	kcfg.Brokers = []string{addr}
	kc, err := kafkaconn.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		var lines []string
		for i := from; i < to; i++ {
			lines = append(lines, fmt.Sprintf("ev-%05d\t%s", i, prediction(i, time.Now())))
		}
		testenv.KcatProduce(t, addr, "predictions", lines)
	}
	produce(0, 100)
	r, err := kc.Reader("predictions", "restart-group")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		stage := ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil))
		_ = stream.Run(ctx, r, stage, stream.Options{BatchSize: 50, BatchesPerWrite: 2, FlushInterval: 100 * time.Millisecond, Log: testenv.Logger(t)})
	}()
	distinct := func() bool { return testenv.Count(t, db, "SELECT uniqExact(event_id) FROM predictions") == 100 }
	testenv.Eventually(t, 30*time.Second, "100 rows before the restart", distinct)

	b.Close()
	if b, err = devkafka.Start(opts); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	defer b.Close()
	produce(100, 200)
	testenv.Eventually(t, 60*time.Second, "200 rows after the restart", func() bool {
		return testenv.Count(t, db, "SELECT uniqExact(event_id) FROM predictions") == 200
	})
	cancel()
	wg.Wait()
}
