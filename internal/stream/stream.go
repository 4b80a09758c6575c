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
	c := &consumer[T]{r: r, stage: stage, opts: opts, log: opts.Log.With("stage", stage.Name)}
	return c.run(ctx)
}

type consumer[T any] struct {
	r     Reader
	stage Stage[T]
	opts  Options
	log   *slog.Logger
	batch batch[T]
}

func (c *consumer[T]) run(ctx context.Context) error {
	// The channel is the bounded buffer: when a flush stalls (ClickHouse
	// down), the fetcher blocks here instead of growing memory.
	msgs := make(chan kafka.Message, c.opts.BatchSize)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.fetch(fetchCtx, msgs)
	}()
	defer func() {
		stopFetch()
		wg.Wait()
	}()

	ticker := time.NewTicker(c.opts.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			c.drain(ctx)
			return nil
		case m := <-msgs:
			c.add(m)
			if c.batch.size() >= c.opts.BatchSize {
				if err := c.flush(ctx); err != nil {
					return nil // only a cancelled context stops a flush
				}
			}
		case <-ticker.C:
			if err := c.flush(ctx); err != nil {
				return nil
			}
		}
	}
}

func (c *consumer[T]) fetch(ctx context.Context, out chan<- kafka.Message) {
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
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// drain stores the batch in hand on shutdown so in-flight work is not
// redone; whatever cannot be stored in time stays uncommitted and is
// redelivered to the next consumer.
func (c *consumer[T]) drain(parent context.Context) {
	if c.batch.size() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.opts.DrainTimeout)
	defer cancel()
	if err := c.flush(ctx); err != nil {
		c.log.Warn("shutdown: batch left uncommitted, it will be redelivered", "messages", c.batch.size(), "err", err)
		return
	}
	c.log.Info("shutdown: in-flight batch stored and committed")
}

func (c *consumer[T]) add(m kafka.Message) {
	c.opts.Metrics.lag.WithLabelValues(c.stage.Name, strconv.Itoa(m.Partition)).Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
	item, ok, err := c.stage.Decode(m)
	switch {
	case err != nil:
		c.batch.addDead(m, c.reason(err), err)
	case !ok:
		c.batch.addSkipped(m)
	default:
		c.batch.addItem(m, item)
	}
}

func (c *consumer[T]) reason(err error) string {
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
func (c *consumer[T]) flush(ctx context.Context) error {
	if c.batch.size() == 0 {
		return nil
	}
	m := c.opts.Metrics
	start := time.Now()
	if len(c.batch.dead) > 0 && c.opts.DeadLetter != nil {
		if err := c.retry(ctx, "dead-letter write", func(ctx context.Context) error {
			return c.opts.DeadLetter.WriteMessages(ctx, c.batch.dead...)
		}); err != nil {
			return err
		}
	}
	if len(c.batch.items) > 0 {
		if err := c.retry(ctx, "store", func(ctx context.Context) error {
			return c.stage.Store(ctx, c.batch.items)
		}); err != nil {
			return err
		}
	}
	if err := c.retry(ctx, "commit", func(ctx context.Context) error {
		return c.r.CommitMessages(ctx, c.batch.lastPerPartition()...)
	}); err != nil {
		return err
	}
	m.flushSeconds.WithLabelValues(c.stage.Name).Observe(time.Since(start).Seconds())
	m.batchSize.WithLabelValues(c.stage.Name).Observe(float64(c.batch.size()))
	m.messages.WithLabelValues(c.stage.Name, "stored").Add(float64(len(c.batch.items)))
	m.messages.WithLabelValues(c.stage.Name, "skipped").Add(float64(c.batch.skipped))
	m.messages.WithLabelValues(c.stage.Name, "dead_lettered").Add(float64(len(c.batch.dead)))
	for reason, n := range c.batch.reasons {
		m.deadLetters.WithLabelValues(c.stage.Name, reason).Add(float64(n))
	}
	m.lastCommit.WithLabelValues(c.stage.Name).SetToCurrentTime()
	c.batch.reset()
	return nil
}

func (c *consumer[T]) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := c.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s of %d messages: %w", what, c.batch.size(), ctx.Err())
		}
		c.opts.Metrics.retries.WithLabelValues(c.stage.Name, what).Inc()
		c.log.Warn(what+" failed; offsets held, retrying", "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%s of %d messages: %w", what, c.batch.size(), ctx.Err())
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
