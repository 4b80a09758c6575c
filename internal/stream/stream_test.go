package stream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

// memReader is an in-memory Reader: a test double of our own small
// interface, used here to drive the consumer's bookkeeping exactly (the
// Kafka path itself is covered by the ingest tests against a real broker).
type memReader struct {
	mu        sync.Mutex
	msgs      []kafka.Message
	next      int
	committed map[int]int64
}

func (r *memReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		r.mu.Lock()
		if r.next < len(r.msgs) {
			m := r.msgs[r.next]
			r.next++
			r.mu.Unlock()
			return m, nil
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (r *memReader) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.committed[m.Partition] = max(r.committed[m.Partition], m.Offset)
	}
	return nil
}

// waitCommitted waits up to 10 s for partition p's committed offset to
// reach off and returns the offset committed by then.
func (r *memReader) waitCommitted(p int, off int64) int64 {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		c := r.committed[p]
		r.mu.Unlock()
		if c >= off || time.Now().After(deadline) {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type memWriter struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (w *memWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msgs...)
	return nil
}

func TestDecoderPanicIsDeadLetteredAndConsumingGoesOn(t *testing.T) {
	r := &memReader{committed: map[int]int64{}}
	for i, v := range []string{"ok", "boom", "ok"} {
		r.msgs = append(r.msgs, kafka.Message{Partition: 0, Offset: int64(i), Value: []byte(v)})
	}
	var stored []string
	var mu sync.Mutex
	stage := Stage[string]{
		Name: "test",
		Decode: func(m kafka.Message) (string, bool, error) {
			if string(m.Value) == "boom" {
				panic("decoder bug")
			}
			return string(m.Value), true, nil
		},
		Store: func(_ context.Context, items []string) error {
			mu.Lock()
			defer mu.Unlock()
			stored = append(stored, items...)
			return nil
		},
	}
	dlq := &memWriter{}
	metrics := NewMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, r, stage, Options{BatchSize: 10, FlushInterval: 10 * time.Millisecond, DeadLetter: dlq, Metrics: metrics})
	}()
	if c := r.waitCommitted(0, 2); c != 2 {
		t.Fatalf("offsets committed up to %d, never past the panicking message", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || len(dlq.msgs) != 1 || string(dlq.msgs[0].Value) != "boom" {
		t.Fatalf("stored %v, dead letters %d", stored, len(dlq.msgs))
	}
	if got := testutil.ToFloat64(metrics.deadLetters.WithLabelValues("test", "decoder_panic")); got != 1 {
		t.Fatalf("decoder_panic dead letters = %v", got)
	}
}
