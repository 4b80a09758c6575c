package router

import (
	"context"
	"log/slog"
	"sync"
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

// KafkaPublisher sends events to Kafka in batches written by one goroutine
// (Run). Publish encodes the event and appends it to the pending batch under
// a mutex: no channel send and no goroutine wake-up per event, only one per
// batch. Publish never blocks: when size events are pending the event is
// dropped and counted, because delaying inference for monitoring would be
// the wrong trade.
type KafkaPublisher struct {
	w      MessageWriter
	size   int
	log    *slog.Logger
	events *prometheus.CounterVec
	// Outcome counters, resolved once: Publish runs per routed request.
	queued, dropped, invalid, published, failed prometheus.Counter
	done                                        chan struct{}

	mu      sync.Mutex
	pending *pubBatch
	spare   *pubBatch // the batch last written, for reuse
	// wake tells Run that the pending batch got its first event, or filled up.
	wake chan struct{}
}

// pubBatch holds encoded events back to back: the value, then the key
// (the event id), of each.
type pubBatch struct {
	buf   []byte
	spans []pubSpan
	msgs  []kafka.Message
}

// pubSpan locates one event in pubBatch.buf.
type pubSpan struct{ start, valueEnd, keyEnd int }

// messages returns the batch as Kafka messages pointing into buf.
func (b *pubBatch) messages() []kafka.Message {
	b.msgs = b.msgs[:0]
	for _, s := range b.spans {
		b.msgs = append(b.msgs, kafka.Message{Key: b.buf[s.valueEnd:s.keyEnd:s.keyEnd], Value: b.buf[s.start:s.valueEnd:s.valueEnd]})
	}
	return b.msgs
}

func (b *pubBatch) reset() {
	b.buf, b.spans = b.buf[:0], b.spans[:0]
	clear(b.msgs)
	b.msgs = b.msgs[:0]
}

// maxPublishBatch bounds one WriteMessages call; publishLinger is how long
// Run waits for a batch to fill. Events are for monitoring, so 20 ms more
// delay is free, while bigger batches mean fewer produce requests: less CPU
// in the router and in the brokers per event.
const (
	maxPublishBatch = 1000
	publishLinger   = 20 * time.Millisecond
)

// encodeBufs are Publish's scratch buffers: the event is encoded outside the
// lock, then copied into the pending batch.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// NewKafkaPublisher returns a publisher writing to w that holds up to size
// pending events. Run must be called to drain it. events (may be nil) counts
// outcomes; pass Router.EventsCounter to share the router's series.
func NewKafkaPublisher(w MessageWriter, size int, events *prometheus.CounterVec, log *slog.Logger) *KafkaPublisher {
	if events == nil {
		events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lookout_router_events_total"}, []string{"outcome"})
	}
	return &KafkaPublisher{w: w, size: size, log: log, events: events, done: make(chan struct{}),
		pending: &pubBatch{}, spare: &pubBatch{}, wake: make(chan struct{}, 1),
		queued: events.WithLabelValues("queued"), dropped: events.WithLabelValues("dropped_queue_full"),
		invalid: events.WithLabelValues("invalid"), published: events.WithLabelValues("published"),
		failed: events.WithLabelValues("failed")}
}

// Publish encodes p (the bytes p.Encode gives) and queues it, keyed by event id.
func (k *KafkaPublisher) Publish(p event.Prediction) bool {
	bp := encodeBufs.Get().(*[]byte)
	defer encodeBufs.Put(bp)
	b, err := appendPrediction((*bp)[:0], &p)
	*bp = b[:0]
	if err != nil {
		k.invalid.Inc()
		return false
	}
	k.mu.Lock()
	pb := k.pending
	n := len(pb.spans)
	if n >= k.size {
		k.mu.Unlock()
		k.dropped.Inc()
		return false
	}
	start := len(pb.buf)
	pb.buf = append(pb.buf, b...)
	valueEnd := len(pb.buf)
	pb.buf = append(pb.buf, p.EventID...)
	pb.spans = append(pb.spans, pubSpan{start, valueEnd, len(pb.buf)})
	k.mu.Unlock()
	if n == 0 || n+1 == maxPublishBatch {
		select {
		case k.wake <- struct{}{}:
		default: // Run has a wake-up pending already
		}
	}
	k.queued.Inc()
	return true
}

// take swaps the pending batch for the spare one and returns it.
func (k *KafkaPublisher) take() *pubBatch {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.pending
	k.pending, k.spare = k.spare, nil
	if k.pending == nil {
		k.pending = &pubBatch{}
	}
	return b
}

// pendingLen is the number of events waiting.
func (k *KafkaPublisher) pendingLen() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pending.spans)
}

// recycle keeps b for reuse once its events are written. After a failed
// write it is dropped instead: the writer may still hold its bytes.
func (k *KafkaPublisher) recycle(b *pubBatch, ok bool) {
	if !ok {
		return
	}
	b.reset()
	k.mu.Lock()
	k.spare = b
	k.mu.Unlock()
}

// Run writes queued events until ctx is cancelled, then flushes what is
// queued (bounded by a short grace period) and returns.
func (k *KafkaPublisher) Run(ctx context.Context) {
	defer close(k.done)
	linger := time.NewTimer(publishLinger)
	linger.Stop()
	for {
		select {
		case <-k.wake:
			k.linger(ctx, linger)
			b := k.take()
			k.recycle(b, k.write(context.WithoutCancel(ctx), b))
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				b := k.take()
				if len(b.spans) == 0 {
					return
				}
				k.recycle(b, k.write(flush, b))
			}
		}
	}
}

// linger waits up to publishLinger for the pending batch to fill, unless it
// is full already or ctx is cancelled.
func (k *KafkaPublisher) linger(ctx context.Context, linger *time.Timer) {
	if k.pendingLen() >= maxPublishBatch {
		return
	}
	linger.Reset(publishLinger)
	defer linger.Stop()
	select {
	case <-linger.C:
	case <-k.wake: // full
	case <-ctx.Done():
	}
}

// write sends b in WriteMessages calls of up to maxPublishBatch events and
// reports whether all succeeded.
func (k *KafkaPublisher) write(ctx context.Context, b *pubBatch) bool {
	ok := true
	msgs := b.messages()
	for len(msgs) > 0 {
		n := min(len(msgs), maxPublishBatch)
		ok = k.writeMessages(ctx, msgs[:n]) && ok
		msgs = msgs[n:]
	}
	return ok
}

func (k *KafkaPublisher) writeMessages(ctx context.Context, batch []kafka.Message) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.w.WriteMessages(ctx, batch...); err != nil {
		k.failed.Add(float64(len(batch)))
		k.log.Warn("publish prediction events", "n", len(batch), "err", err)
		return false
	}
	k.published.Add(float64(len(batch)))
	return true
}

// Done is closed when Run has returned.
func (k *KafkaPublisher) Done() <-chan struct{} { return k.done }
