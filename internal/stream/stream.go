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
	// Store persists a batch of items; it must be idempotent.
	Store func(ctx context.Context, items []T) error
	// Reason maps a decode error to a low-cardinality reason label.
	Reason func(error) string
}

// Options tune a consumer.
type Options struct {
	BatchSize     int
	FlushInterval time.Duration
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
	if stage.Decode == nil || stage.Store == nil || stage.Name == "" {
		return errors.New("stream: stage needs Name, Decode and Store")
	}
	opts.defaults()
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
// committed strictly in order, one at a time, while the next one fills.
// Every channel is bounded, so a stalled store (ClickHouse down) stops the
// fetcher instead of growing memory: at most two batches plus 4096 decoded
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

func (c *consumer[T]) storeLoop(ctx context.Context, full <-chan *batch[T]) {
	stored := true
	for b := range full {
		switch {
		case !stored:
			// An earlier batch is uncommitted: committing this one would
			// move the offsets past it and lose it.
		case ctx.Err() != nil:
			stored = c.drain(ctx, b)
		case c.flush(ctx, b) != nil:
			// Only a cancelled context stops a flush: store what is left at
			// shutdown under the drain deadline.
			stored = c.drain(ctx, b)
		}
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

// drain stores a batch at shutdown so in-flight work is not redone;
// whatever cannot be stored in time stays uncommitted and is redelivered to
// the next consumer.
func (c *consumer[T]) drain(parent context.Context, b *batch[T]) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.opts.DrainTimeout)
	defer cancel()
	if err := c.flush(ctx, b); err != nil {
		c.log.Warn("shutdown: batch left uncommitted, it will be redelivered", "messages", b.size(), "err", err)
		return false
	}
	c.log.Info("shutdown: in-flight batch stored and committed", "messages", b.size())
	return true
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

// flush writes dead letters, stores items and commits, retrying each step
// until it succeeds or ctx ends. Nothing is committed unless both writes
// succeeded, so a crash anywhere here loses nothing.
func (c *consumer[T]) flush(ctx context.Context, b *batch[T]) error {
	if b.size() == 0 {
		return nil
	}
	m := c.opts.Metrics
	start := time.Now()
	if len(b.dead) > 0 && c.opts.DeadLetter != nil {
		if err := c.retry(ctx, b, "dead-letter write", func(ctx context.Context) error {
			return c.opts.DeadLetter.WriteMessages(ctx, b.dead...)
		}); err != nil {
			return err
		}
	}
	if len(b.items) > 0 {
		if err := c.retry(ctx, b, "store", func(ctx context.Context) error {
			return c.stage.Store(ctx, b.items)
		}); err != nil {
			return err
		}
	}
	if err := c.retry(ctx, b, "commit", func(ctx context.Context) error {
		return c.r.CommitMessages(ctx, b.lastPerPartition()...)
	}); err != nil {
		return err
	}
	m.flushSeconds.WithLabelValues(c.stage.Name).Observe(time.Since(start).Seconds())
	m.batchSize.WithLabelValues(c.stage.Name).Observe(float64(b.size()))
	m.messages.WithLabelValues(c.stage.Name, "stored").Add(float64(len(b.items)))
	m.messages.WithLabelValues(c.stage.Name, "skipped").Add(float64(b.skipped))
	m.messages.WithLabelValues(c.stage.Name, "dead_lettered").Add(float64(len(b.dead)))
	for reason, n := range b.reasons {
		m.deadLetters.WithLabelValues(c.stage.Name, reason).Add(float64(n))
	}
	m.lastCommit.WithLabelValues(c.stage.Name).SetToCurrentTime()
	return nil
}

func (c *consumer[T]) retry(ctx context.Context, b *batch[T], what string, fn func(context.Context) error) error {
	backoff := c.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s of %d messages: %w", what, b.size(), ctx.Err())
		}
		c.opts.Metrics.retries.WithLabelValues(c.stage.Name, what).Inc()
		c.log.Warn(what+" failed; offsets held, retrying", "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%s of %d messages: %w", what, b.size(), ctx.Err())
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
