package router

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// recordingWriter is a MessageWriter that keeps copies of what it was given
// and can be held up to fill the publisher's queue.
type recordingWriter struct {
	mu    sync.Mutex
	msgs  []kafka.Message
	calls int
	hold  chan struct{} // when non-nil, each call waits for it to close
}

func (w *recordingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	if w.hold != nil {
		<-w.hold
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	for _, m := range msgs {
		// Copies: the publisher reuses its buffers once the call returns.
		w.msgs = append(w.msgs, kafka.Message{Key: bytes.Clone(m.Key), Value: bytes.Clone(m.Value)})
	}
	return nil
}

func (w *recordingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs)
}

func testPrediction(i int) event.Prediction {
	lat := float64(i) / 8
	return event.Prediction{SchemaVersion: event.SchemaVersion, EventID: fmt.Sprint("ev-", i),
		TS: time.Unix(1_800_000_000+int64(i), 0), Model: "m", ModelVersion: "v1", Source: "cam-1",
		Task: event.TaskClassification, ImageURI: "file:///a.png", PredictedClass: "good",
		Probs: event.Probs{{Class: "dent", Score: 0.25}, {Class: "good", Score: 0.75}}, LatencyMS: &lat, Arm: "stable"}
}

// Events queued across several batches (and refills of reused buffers)
// reach the writer once each, in order, keyed by event id, with exactly the
// bytes Encode gives.
func TestKafkaPublisherBatches(t *testing.T) {
	w := &recordingWriter{}
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"outcome"})
	pub := NewKafkaPublisher(w, 5000, events, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	go pub.Run(ctx)
	const n = 2500
	for i := range n {
		if !pub.Publish(testPrediction(i)) {
			t.Fatalf("event %d refused", i)
		}
		if i%500 == 0 {
			testenv.Eventually(t, 10*time.Second, "a batch to be written", func() bool { return w.count() > i-500 })
		}
	}
	testenv.Eventually(t, 10*time.Second, "all events written", func() bool { return w.count() == n })
	cancel()
	<-pub.Done()
	for i, m := range w.msgs {
		p := testPrediction(i)
		want, _ := p.Encode()
		if string(m.Key) != p.EventID || !bytes.Equal(m.Value, want) {
			t.Fatalf("message %d: key %q value %s, want %q %s", i, m.Key, m.Value, p.EventID, want)
		}
	}
	if got := testutilValue(events, "published"); got != n {
		t.Errorf("published = %v, want %d", got, n)
	}
}

// With the writer stuck, at most size events wait; the rest are dropped and
// counted, Publish never blocks, and what waited is flushed at shutdown.
func TestKafkaPublisherDropsWhenFull(t *testing.T) {
	w := &recordingWriter{hold: make(chan struct{})}
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"outcome"})
	pub := NewKafkaPublisher(w, 10, events, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	go pub.Run(ctx)
	pub.Publish(testPrediction(0))
	// Run takes the first event and blocks in the writer; then 10 more fit.
	testenv.Eventually(t, 10*time.Second, "the first batch to be taken", func() bool { return pub.pendingLen() == 0 })
	accepted := 0
	for i := 1; i <= 30; i++ {
		if pub.Publish(testPrediction(i)) {
			accepted++
		}
	}
	if accepted != 10 || testutilValue(events, "dropped_queue_full") != 20 {
		t.Errorf("accepted %d, dropped %v; want 10 and 20", accepted, testutilValue(events, "dropped_queue_full"))
	}
	cancel()
	close(w.hold)
	<-pub.Done()
	if w.count() != 11 {
		t.Errorf("written %d, want 11 (flushed at shutdown)", w.count())
	}
}
