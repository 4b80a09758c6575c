// Package stream runs lookout's Kafka consumers: it reads a topic in a consumer
// group, decodes and batches messages, sends the ones that do not decode to a
// dead-letter topic with a reason, stores each batch, and commits offsets only
// after the batch is stored. Delivery is therefore at-least-once; every Store
// must be idempotent (lookout's tables collapse duplicates by event_id).
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Reader is the part of *kafka.Reader a consumer uses.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Writer is the part of *kafka.Writer the dead-letter path uses.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Stage is what a consumer does with the messages of one topic.
type Stage[T any] struct {
	// Name labels metrics and logs, e.g. "predictions".
	Name string
	// Decode turns a message into an item. ok=false skips the message (it is
	// still committed). An error sends the message to the dead-letter topic;
	// event.ReasonOf-style reasons come from ReasonFunc.
	Decode func(kafka.Message) (item T, ok bool, err error)
	// Store persists a batch of items; it must be idempotent. Stages that
	// set Begin leave it nil.
	Store func(ctx context.Context, items []T) error
	// Begin, if set, opens a write that up to Options.BatchesPerWrite
	// batches join before it is committed: while the consumer is behind,
	// the store sees fewer, larger writes (for ClickHouse: fewer parts to
	// create and merge). Offsets are committed after the write is.
	Begin func(ctx context.Context) (Write[T], error)
	// Reason maps a decode error to a low-cardinality reason label.
	Reason func(error) string
}

// Write is an open write to the store, begun by Stage.Begin.
type Write[T any] interface {
	// Add sends items; they are stored only once Commit returns nil.
	Add(ctx context.Context, items []T) error
	// Commit stores everything added. The write is finished either way.
	Commit(ctx context.Context) error
	// Abort abandons the write. Some of what was added may be stored
	// anyway; it is written again, which stores must tolerate.
	Abort()
}

// Options tune a consumer.
type Options struct {
	BatchSize     int
	FlushInterval time.Duration
	// BatchesPerWrite is how many full batches may join one write of a
	// stage with Begin (1 without). A batch that is not full means the
	// consumer has caught up: its write is committed at once. Each batch
	// in an open write is held in memory until the commit, for retries.
	BatchesPerWrite int
	// DeadLetter receives undecodable messages; nil means they are only
	// counted and logged (for stages that are not the topic's owner).
	DeadLetter Writer
	Metrics    *Metrics
	Log        *slog.Logger
	// RetryMin and RetryMax bound the backoff between failed store attempts.
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds the final flush at shutdown.
	DrainTimeout time.Duration
}

func (o *Options) defaults() {
	if o.BatchSize < 1 {
		o.BatchSize = 1000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = 10 * time.Second
	}
	if o.BatchesPerWrite < 1 {
		o.BatchesPerWrite = 1
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Run consumes until ctx is cancelled, then stores and commits the batch in
// hand (bounded by DrainTimeout) and returns nil. It returns an error only if
// the stage is misconfigured.
func Run[T any](ctx context.Context, r Reader, stage Stage[T], opts Options) error {
	if stage.Decode == nil || (stage.Store == nil) == (stage.Begin == nil) || stage.Name == "" {
		return errors.New("stream: stage needs Name, Decode and one of Store or Begin")
	}
	opts.defaults()
	if stage.Begin == nil {
		stage.Begin = storeEach(stage.Store)
		opts.BatchesPerWrite = 1
	}
	c := &consumer[T]{r: r, stage: stage, opts: opts, log: opts.Log.With("stage", stage.Name), lag: map[int]prometheus.Gauge{}}
	return c.run(ctx)
}

type consumer[T any] struct {
	r     Reader
	stage Stage[T]
	opts  Options
	log   *slog.Logger
	lag   map[int]prometheus.Gauge
}

// decoded is a fetched message after the stage's Decode.
type decoded[T any] struct {
	msg  kafka.Message
	item T
	ok   bool
	err  error
}

// run is a three-stage pipeline, each stage one goroutine: fetch+decode,
// batching (this goroutine), and store+commit. Batches are stored and
// committed strictly in order while the next one fills. Every channel is
// bounded, so a stalled store (ClickHouse down) stops the fetcher instead
// of growing memory: at most BatchesPerWrite+1 batches plus 4096 decoded
// messages are held.
func (c *consumer[T]) run(ctx context.Context) error {
	in := make(chan decoded[T], min(c.opts.BatchSize, 4096))
	fetchCtx, stopFetch := context.WithCancel(ctx)
	var fetchWG sync.WaitGroup
	fetchWG.Add(1)
	go func() {
		defer fetchWG.Done()
		c.fetch(fetchCtx, in)
	}()

	full := make(chan *batch[T], 1)
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		c.storeLoop(ctx, full)
	}()

	c.collect(ctx, in, full)
	stopFetch()
	fetchWG.Wait()
	close(full)
	<-storeDone
	return nil
}

// collect fills batches until ctx ends, handing each full (or timed-out)
// batch to the store loop; the partial batch in hand at shutdown is handed
// over too, so it is stored within DrainTimeout.
func (c *consumer[T]) collect(ctx context.Context, in <-chan decoded[T], full chan<- *batch[T]) {
	ticker := time.NewTicker(c.opts.FlushInterval)
	defer ticker.Stop()
	b := &batch[T]{}
	hand := func() bool {
		if b.size() == 0 {
			return true
		}
		select {
		case full <- b:
			// Sized like the batch just handed over: growing a slice of
			// 30,000 items by doubling cost 3% of the ingest CPU.
			b = &batch[T]{items: make([]T, 0, len(b.items))}
			return true
		case <-ctx.Done():
			return false
		}
	}
	add := func(d decoded[T]) bool {
		b.add(d, c.reason)
		return b.size() < c.opts.BatchSize || hand()
	}
	for {
		// While messages are waiting, take them without a full select (a
		// third of this loop's cost at 150k messages/s), looking at the
		// context and the ticker at least every fastTakes messages.
		for range fastTakes {
			d, ok := tryRecv(in)
			if !ok {
				break
			}
			if !add(d) {
				return
			}
		}
		select {
		case <-ctx.Done():
			if b.size() > 0 {
				full <- b // the store loop drains it with a fresh deadline
			}
			return
		case d := <-in:
			if !add(d) {
				return
			}
		case <-ticker.C:
			if !hand() {
				return
			}
		}
	}
}

// fastTakes bounds how many waiting messages collect takes between two
// looks at its context and flush ticker.
const fastTakes = 256

// tryRecv receives from ch if a value is waiting (and ch is open).
func tryRecv[T any](ch <-chan T) (T, bool) {
	select {
	case v, open := <-ch:
		return v, open
	default:
		var zero T
		return zero, false
	}
}

func (c *consumer[T]) fetch(ctx context.Context, out chan<- decoded[T]) {
	backoff := c.opts.RetryMin
	for {
		m, err := c.r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("fetch failed, retrying", "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, c.opts.RetryMax)
			continue
		}
		backoff = c.opts.RetryMin
		c.observeLag(m)
		d := c.decode(m)
		select {
		case out <- d: // room in the queue: no full select needed
			continue
		default:
		}
		select {
		case out <- d:
		case <-ctx.Done():
			return
		}
	}
}

// decode runs the stage's decoder; a decoder that panics on some input
// sends that message to the dead-letter topic instead of killing the
// consumer: the service never crashes on input.
func (c *consumer[T]) decode(m kafka.Message) (d decoded[T]) {
	d.msg = m
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("decoder panicked; message dead-lettered", "partition", m.Partition, "offset", m.Offset, "panic", r)
			d.ok, d.err = false, &PanicError{Value: r}
		}
	}()
	d.item, d.ok, d.err = c.stage.Decode(m)
	return d
}

// PanicError is the decode error of a message whose decoder panicked; its
// dead-letter reason is "decoder_panic".
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("decoder panic: %v", e.Value) }

func (c *consumer[T]) observeLag(m kafka.Message) {
	g, ok := c.lag[m.Partition]
	if !ok {
		g = c.opts.Metrics.lag.WithLabelValues(c.stage.Name, strconv.Itoa(m.Partition))
		c.lag[m.Partition] = g
	}
	g.Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
}

func (c *consumer[T]) reason(err error) string {
	if _, ok := err.(*PanicError); ok {
		return "decoder_panic"
	}
	if c.stage.Reason != nil {
		if r := c.stage.Reason(err); r != "" {
			return r
		}
	}
	return "invalid"
}

// retry runs fn until it succeeds or ctx ends, backing off between
// attempts; n is the number of messages at stake, for the log.
func (c *consumer[T]) retry(ctx context.Context, n int, what string, fn func(context.Context) error) error {
	backoff := c.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s of %d messages: %w", what, n, ctx.Err())
		}
		c.opts.Metrics.retries.WithLabelValues(c.stage.Name, what).Inc()
		c.log.Warn(what+" failed; offsets held, retrying", "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%s of %d messages: %w", what, n, ctx.Err())
		}
		backoff = min(2*backoff, c.opts.RetryMax)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
