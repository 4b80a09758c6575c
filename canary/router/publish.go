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
	done   chan struct{}
}

// maxPublishBatch bounds one WriteMessages call.
const maxPublishBatch = 500

// NewKafkaPublisher returns a publisher writing to w with a queue of size
// messages. Run must be called to drain it. events (may be nil) counts
// outcomes; pass Router.EventsCounter to share the router's series.
func NewKafkaPublisher(w MessageWriter, size int, events *prometheus.CounterVec, log *slog.Logger) *KafkaPublisher {
	if events == nil {
		events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lookout_router_events_total"}, []string{"outcome"})
	}
	return &KafkaPublisher{w: w, queue: make(chan kafka.Message, size), log: log, events: events, done: make(chan struct{})}
}

// Publish encodes p and queues it, keyed by event id.
func (k *KafkaPublisher) Publish(p event.Prediction) bool {
	b, err := p.Encode()
	if err != nil {
		k.events.WithLabelValues("invalid").Inc()
		return false
	}
	select {
	case k.queue <- kafka.Message{Key: []byte(p.EventID), Value: b}:
		k.events.WithLabelValues("queued").Inc()
		return true
	default:
		k.events.WithLabelValues("dropped_queue_full").Inc()
		return false
	}
}

// Run writes queued events until ctx is cancelled, then flushes what is
// queued (bounded by a short grace period) and returns.
func (k *KafkaPublisher) Run(ctx context.Context) {
	defer close(k.done)
	batch := make([]kafka.Message, 0, maxPublishBatch)
	for {
		select {
		case m := <-k.queue:
			batch = k.fill(append(batch[:0], m))
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
		k.events.WithLabelValues("failed").Add(float64(len(batch)))
		k.log.Warn("publish prediction events", "n", len(batch), "err", err)
		return
	}
	k.events.WithLabelValues("published").Add(float64(len(batch)))
}

// Done is closed when Run has returned.
func (k *KafkaPublisher) Done() <-chan struct{} { return k.done }
