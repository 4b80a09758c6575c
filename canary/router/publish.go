package router

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
)

// Publisher accepts prediction events without ever blocking the caller: an
// implementation that cannot keep up drops and counts.
type Publisher interface {
	// Publish queues p and reports whether it was accepted.
	Publish(p event.Prediction) bool
}

// MessageWriter is the part of *kafka.Writer the publisher uses.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// KafkaPublisher sends events to Kafka through a bounded queue drained by one
// goroutine in batches. Publish never blocks: when the queue is full the event
// is dropped and counted, because delaying inference for monitoring would be
// the wrong trade.
type KafkaPublisher struct {
	w      MessageWriter
	queue  chan kafka.Message
	log    *slog.Logger
	events *prometheus.CounterVec
	// Outcome counters, resolved once: Publish runs per routed request.
	queued, dropped, invalid, published, failed prometheus.Counter
	done                                        chan struct{}
}

// maxPublishBatch bounds one WriteMessages call; publishLinger is how long
// Run waits for a batch to fill. Events are for monitoring, so 20 ms more
// delay is free, while bigger batches mean fewer produce requests: less CPU
// in the router and in the brokers per event.
const (
	maxPublishBatch = 1000
	publishLinger   = 20 * time.Millisecond
)

// NewKafkaPublisher returns a publisher writing to w with a queue of size
// messages. Run must be called to drain it. events (may be nil) counts
// outcomes; pass Router.EventsCounter to share the router's series.
func NewKafkaPublisher(w MessageWriter, size int, events *prometheus.CounterVec, log *slog.Logger) *KafkaPublisher {
	if events == nil {
		events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lookout_router_events_total"}, []string{"outcome"})
	}
	return &KafkaPublisher{w: w, queue: make(chan kafka.Message, size), log: log, events: events, done: make(chan struct{}),
		queued: events.WithLabelValues("queued"), dropped: events.WithLabelValues("dropped_queue_full"),
		invalid: events.WithLabelValues("invalid"), published: events.WithLabelValues("published"),
		failed: events.WithLabelValues("failed")}
}

// Publish encodes p (the bytes p.Encode gives) and queues it, keyed by event id.
func (k *KafkaPublisher) Publish(p event.Prediction) bool {
	// One allocation holds the key and the value.
	b, err := appendPrediction(make([]byte, 0, 512), &p)
	if err != nil {
		k.invalid.Inc()
		return false
	}
	n := len(b)
	b = append(b, p.EventID...)
	select {
	case k.queue <- kafka.Message{Key: b[n:len(b):len(b)], Value: b[:n:n]}:
		k.queued.Inc()
		return true
	default:
		k.dropped.Inc()
		return false
	}
}

// Run writes queued events until ctx is cancelled, then flushes what is
// queued (bounded by a short grace period) and returns.
func (k *KafkaPublisher) Run(ctx context.Context) {
	defer close(k.done)
	batch := make([]kafka.Message, 0, maxPublishBatch)
	linger := time.NewTimer(publishLinger)
	linger.Stop()
	for {
		select {
		case m := <-k.queue:
			batch = k.collect(ctx, linger, append(batch[:0], m))
			k.write(context.WithoutCancel(ctx), batch)
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				batch = k.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				k.write(flush, batch)
			}
		}
	}
}

// collect adds queued events for up to publishLinger, until the batch is
// full or ctx is cancelled.
func (k *KafkaPublisher) collect(ctx context.Context, linger *time.Timer, batch []kafka.Message) []kafka.Message {
	linger.Reset(publishLinger)
	defer linger.Stop()
	for len(batch) < maxPublishBatch {
		select {
		case m := <-k.queue:
			batch = append(batch, m)
		case <-linger.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// fill adds whatever is queued, up to maxPublishBatch, without waiting.
func (k *KafkaPublisher) fill(batch []kafka.Message) []kafka.Message {
	for len(batch) < maxPublishBatch {
		select {
		case m := <-k.queue:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func (k *KafkaPublisher) write(ctx context.Context, batch []kafka.Message) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.w.WriteMessages(ctx, batch...); err != nil {
		k.failed.Add(float64(len(batch)))
		k.log.Warn("publish prediction events", "n", len(batch), "err", err)
		return
	}
	k.published.Add(float64(len(batch)))
}

// Done is closed when Run has returned.
func (k *KafkaPublisher) Done() <-chan struct{} { return k.done }
