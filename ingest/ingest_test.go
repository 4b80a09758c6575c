package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/stream"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func prediction(i int, ts time.Time) string {
	return fmt.Sprintf(`{"schema_version":1,"event_id":"ev-%05d","ts":%q,"model":"m","model_version":"v1",`+
		`"source":"cam-%d","task":"classification","image_uri":"file:///img/%d.jpg",`+
		`"probs":{"good":0.8,"dent":0.15,"scratch":0.05},"latency_ms":3}`, i, ts.UTC().Format(time.RFC3339Nano), i%3, i)
}

type harness struct {
	t      *testing.T
	conn   *kafkaconn.Conn
	kcfg   config.Kafka
	broker string
}

func newHarness(t *testing.T) *harness {
	broker := testenv.Kafka(t, "predictions", "predictions-dlq", "labels")
	kcfg := config.Default().Kafka
	kcfg.Brokers = []string{broker}
	conn, err := kafkaconn.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, conn: conn, kcfg: kcfg, broker: broker}
}

// consume runs stage until the returned stop function is called.
func consume[T any](h *harness, topic string, stage stream.Stage[T]) (stop func()) {
	r, err := h.conn.Reader(topic, "test-group-"+topic)
	if err != nil {
		h.t.Fatal(err)
	}
	dlq := h.conn.Writer("predictions-dlq")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		opts := stream.Options{BatchSize: 500, BatchesPerWrite: 3, FlushInterval: 100 * time.Millisecond, DeadLetter: dlq, Log: testenv.Logger(h.t)}
		if err := stream.Run(ctx, r, stage, opts); err != nil {
			h.t.Error(err)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		r.Close()
		dlq.Close()
	}
}

func TestPredictionsEndToEnd(t *testing.T) {
	h := newHarness(t)
	db, _ := testenv.ClickHouse(t)
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var lines []string
	for i := range 300 {
		lines = append(lines, fmt.Sprintf("ev-%05d\t%s", i, prediction(i, base.Add(time.Duration(i)*time.Millisecond))))
	}
	// Redelivery of the first ten: must not count twice.
	lines = append(lines, lines[:10]...)
	bad := []string{
		"b1\t{not json",
		"b2\t" + strings.Replace(prediction(1000, base), `"source":"cam-1",`, "", 1),
		"b3\t" + strings.Replace(prediction(1001, base), `"good":0.8`, `"good":0.1`, 1),
	}
	testenv.KcatProduce(t, h.broker, "predictions", append(lines, bad...))

	stop := consume(h, "predictions", ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil)))
	testenv.Eventually(t, 30*time.Second, "300 distinct predictions in ClickHouse", func() bool {
		return testenv.Count(t, db, "SELECT uniqExact(event_id) FROM predictions") == 300
	})
	testenv.Eventually(t, 10*time.Second, "3 dead letters", func() bool {
		return strings.Count(testenv.KcatConsume(t, h.broker, "predictions-dlq", "%k|%h|%s\n"), "lookout-reason=") == 3
	})
	stop()

	if n := testenv.Count(t, db, "SELECT count() FROM predictions FINAL"); n != 300 {
		t.Errorf("rows after FINAL = %d, want 300 (duplicates must collapse)", n)
	}
	if n := testenv.Count(t, db, "SELECT count() FROM predictions WHERE source = '' OR event_id LIKE 'b%'"); n != 0 {
		t.Errorf("%d invalid events reached ClickHouse", n)
	}
	dlq := testenv.KcatConsume(t, h.broker, "predictions-dlq", "%k|%h|%s\n")
	for _, want := range []string{"lookout-reason=malformed_json", "lookout-reason=missing_field", "lookout-reason=bad_probabilities", "lookout-source-topic=predictions"} {
		if !strings.Contains(dlq, want) {
			t.Errorf("dead-letter topic lacks %q:\n%s", want, dlq)
		}
	}
	if !strings.Contains(dlq, "b1|") || !strings.Contains(dlq, "{not json") {
		t.Errorf("dead letter must keep the original key and bytes:\n%s", dlq)
	}
	var conf float32
	var latency *float32
	var classes []string
	var probs []float32
	if err := db.QueryRow(context.Background(), "SELECT confidence, latency_ms, prob_classes, prob_values FROM predictions WHERE event_id = 'ev-00007' LIMIT 1").
		Scan(&conf, &latency, &classes, &probs); err != nil || conf != 0.8 || latency == nil || *latency != 3 {
		t.Errorf("confidence = %v, latency_ms = %v (%v), want 0.8 and 3", conf, latency, err)
	}
	// The full softmax, in class order; prob_classes is computed from class_set.
	if !slices.Equal(classes, []string{"dent", "good", "scratch"}) || !slices.Equal(probs, []float32{0.15, 0.8, 0.05}) {
		t.Errorf("prob_classes %q, prob_values %v; want [dent good scratch] [0.15 0.8 0.05]", classes, probs)
	}
}

// countingStage wraps a stage to count what it stores.
func countingStage[T any](s stream.Stage[T], n *atomic.Int64) stream.Stage[T] {
	return hookedStage(s, func(stored int, err error) error {
		if err == nil {
			n.Add(int64(stored))
		}
		return err
	})
}

// hookedStage wraps a stage's writes: after each commit of the real write,
// hook sees how many items the write held and the commit's error, and
// returns the error the consumer sees.
func hookedStage[T any](s stream.Stage[T], hook func(items int, err error) error) stream.Stage[T] {
	inner := s.Begin
	s.Begin = func(ctx context.Context) (stream.Write[T], error) {
		w, err := inner(ctx)
		if err != nil {
			return nil, err
		}
		return &hookedWrite[T]{Write: w, hook: hook}, nil
	}
	return s
}

type hookedWrite[T any] struct {
	stream.Write[T]
	n    int
	hook func(int, error) error
}

func (w *hookedWrite[T]) Add(ctx context.Context, items []T) error {
	w.n += len(items)
	return w.Write.Add(ctx, items)
}

func (w *hookedWrite[T]) Commit(ctx context.Context) error {
	return w.hook(w.n, w.Write.Commit(ctx))
}

func TestOffsetsCommittedOnlyAfterStore(t *testing.T) {
	h := newHarness(t)
	db, _ := testenv.ClickHouse(t)
	base := time.Now().Add(-time.Minute)
	var lines []string
	for i := range 50 {
		lines = append(lines, fmt.Sprintf("ev-%05d\t%s", i, prediction(i, base)))
	}
	testenv.KcatProduce(t, h.broker, "predictions", lines)

	var first atomic.Int64
	stop := consume(h, "predictions", countingStage(ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil)), &first))
	testenv.Eventually(t, 30*time.Second, "50 rows", func() bool {
		return testenv.Count(t, db, "SELECT count() FROM predictions") == 50
	})
	stop()

	// A restarted consumer of the same group starts after the committed
	// offsets: it sees only the new event.
	testenv.KcatProduce(t, h.broker, "predictions", []string{"ev-99999\t" + prediction(99999, base)})
	var second atomic.Int64
	stop = consume(h, "predictions", countingStage(ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil)), &second))
	testenv.Eventually(t, 30*time.Second, "the new row", func() bool {
		return testenv.Count(t, db, "SELECT count() FROM predictions") == 51
	})
	stop()
	if first.Load() != 50 || second.Load() != 1 {
		t.Fatalf("stored %d then %d items, want 50 then 1: offsets were not committed after the store", first.Load(), second.Load())
	}
}

func TestStoreFailureHoldsOffsets(t *testing.T) {
	h := newHarness(t)
	db, _ := testenv.ClickHouse(t)
	base := time.Now().Add(-time.Minute)
	testenv.KcatProduce(t, h.broker, "predictions", []string{"ev-00001\t" + prediction(1, base), "ev-00002\t" + prediction(2, base)})

	// A store that fails three times (as during a ClickHouse outage) must be
	// retried, not skipped, and nothing may be committed in between.
	var calls atomic.Int64
	stage := ingest.Predictions(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil))
	stage.Begin = func(ctx context.Context) (stream.Write[event.Prediction], error) {
		if calls.Add(1) <= 3 {
			return nil, fmt.Errorf("injected outage")
		}
		return ingest.Predictions(db, &event.Decoder{}, ingest.NewMetrics(nil)).Begin(ctx)
	}
	stop := consume(h, "predictions", stage)
	testenv.Eventually(t, 30*time.Second, "rows after the outage", func() bool {
		return testenv.Count(t, db, "SELECT count() FROM predictions") == 2
	})
	stop()
	if calls.Load() < 4 {
		t.Fatalf("store called %d times, want ≥ 4 (3 failures then success)", calls.Load())
	}
}

func TestLabelsStored(t *testing.T) {
	h := newHarness(t)
	db, _ := testenv.ClickHouse(t)
	ts := time.Now().UTC().Format(time.RFC3339)
	testenv.KcatProduce(t, h.broker, "labels", []string{
		`ev-1	{"event_id":"ev-1","label":"dent","annotator":"ann-1","ts":"` + ts + `"}`,
		`ev-2	{"event_id":"ev-2","annotator":"ann-1","ts":"` + ts + `"}`,
	})
	stop := consume(h, "labels", ingest.Labels(db, &event.Decoder{Limits: event.DefaultLimits()}, ingest.NewMetrics(nil)))
	testenv.Eventually(t, 30*time.Second, "one label row", func() bool {
		return testenv.Count(t, db, "SELECT count() FROM labels") == 1
	})
	testenv.Eventually(t, 10*time.Second, "the label without a label in the DLQ", func() bool {
		return strings.Contains(testenv.KcatConsume(t, h.broker, "predictions-dlq", "%k|%h|%s\n"), "lookout-reason=missing_field")
	})
	stop()
}
