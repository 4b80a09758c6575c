package kafkaconn_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestOneLeaderAtATime runs two candidates against a real (kfake) group
// coordinator: exactly one leads; when it stops, the other takes over; the
// two never lead at the same time.
func TestOneLeaderAtATime(t *testing.T) {
	kcfg := config.Default().Kafka
	kcfg.Brokers = []string{testenv.Kafka(t, kcfg.LeaderTopic)}
	conn, err := kafkaconn.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	var leading, overlaps atomic.Int32
	var who atomic.Value
	candidate := func(ctx context.Context, name string, wg *sync.WaitGroup) {
		defer wg.Done()
		_ = conn.Lead(ctx, "test", testenv.Logger(t), func(ctx context.Context) {
			if leading.Add(1) > 1 {
				overlaps.Add(1)
			}
			who.Store(name)
			<-ctx.Done()
			leading.Add(-1)
		})
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	var wg sync.WaitGroup
	wg.Add(2)
	go candidate(ctxA, "a", &wg)
	go candidate(ctxB, "b", &wg)
	testenv.Eventually(t, 30*time.Second, "a leader", func() bool { return leading.Load() == 1 })
	first := who.Load().(string)
	if first == "a" {
		stopA()
	} else {
		stopB()
	}
	testenv.Eventually(t, 60*time.Second, "the other candidate to take over", func() bool {
		w, _ := who.Load().(string)
		return w != first && leading.Load() == 1
	})
	stopA()
	stopB()
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("two leaders at once %d times", overlaps.Load())
	}
}
