package stream

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// group is the store loop's open write and the batches in it, oldest first.
// Batches are kept until the write is committed: a failed write is begun
// again with every one of them.
type group[T any] struct {
	begin   func(context.Context) (Write[T], error)
	w       Write[T]
	batches []*batch[T]
	added   int // batches[:added] are in w
	started time.Time
}

func (g *group[T]) size() int {
	n := 0
	for _, b := range g.batches {
		n += b.size()
	}
	return n
}

// send adds the batches not yet in the write, beginning one when the
// first items come (a group of dead letters alone writes nothing).
func (g *group[T]) send(ctx context.Context) error {
	for ; g.added < len(g.batches); g.added++ {
		items := g.batches[g.added].items
		if len(items) == 0 {
			continue
		}
		if g.w == nil {
			w, err := g.begin(ctx)
			if err != nil {
				return err
			}
			g.w = w
		}
		if err := g.w.Add(ctx, items); err != nil {
			return err
		}
	}
	return nil
}

func (g *group[T]) commit(ctx context.Context) error {
	if err := g.send(ctx); err != nil || g.w == nil {
		return err
	}
	w := g.w
	g.w = nil
	return w.Commit(ctx)
}

// abort drops the open write; the next send begins a new one with every
// batch of the group.
func (g *group[T]) abort() {
	if g.w != nil {
		g.w.Abort()
		g.w = nil
	}
	g.added = 0
}

// lastPerPartition is what to commit for the whole group: a partition's
// newest message covers every earlier one.
func (g *group[T]) lastPerPartition() []kafka.Message {
	var last []int64
	topic := ""
	for _, b := range g.batches {
		for len(last) < len(b.last) {
			last = append(last, -1)
		}
		for p, off := range b.last {
			last[p] = max(last[p], off)
		}
		topic = b.topic
	}
	var out []kafka.Message
	for p, off := range last {
		if off >= 0 {
			out = append(out, kafka.Message{Topic: topic, Partition: p, Offset: off})
		}
	}
	return out
}

// storeLoop stores batches in order. A full batch joins the open write and
// the loop waits (at most FlushInterval) for the next; the write is
// committed, and then the offsets, when it holds BatchesPerWrite batches or
// a batch arrives that is not full (the consumer has caught up).
func (c *consumer[T]) storeLoop(ctx context.Context, full <-chan *batch[T]) {
	st := &storer[T]{c: c, ctx: ctx, g: &group[T]{begin: c.stage.Begin}}
	defer st.stop()
	for {
		b, open := c.next(full, st.g)
		if b != nil && !st.failed {
			st.g.push(b)
			st.do(c.send)
			if !st.failed && len(st.g.batches) < c.opts.BatchesPerWrite && b.size() >= c.opts.BatchSize {
				continue
			}
		}
		if len(st.g.batches) > 0 && !st.failed {
			st.do(c.commit)
		}
		if !open {
			return
		}
	}
}

// storer runs the store loop's steps: under the consumer's context, and
// once that ends, under one DrainTimeout for all that is left, so in-flight
// work is stored instead of redone. What cannot be stored in time stays
// uncommitted and is redelivered to the next consumer.
type storer[T any] struct {
	c      *consumer[T]
	ctx    context.Context
	g      *group[T]
	drain  context.Context
	cancel context.CancelFunc
	// failed: a group is left uncommitted; committing later ones would move
	// the offsets past it.
	failed bool
}

// do runs step, which retries until it succeeds or its context ends.
func (st *storer[T]) do(step func(context.Context, *group[T]) error) {
	if st.drain == nil && st.ctx.Err() == nil && step(st.ctx, st.g) == nil {
		return
	}
	if st.drain == nil {
		st.g.abort() // begun under the ended context
		st.drain, st.cancel = context.WithTimeout(context.WithoutCancel(st.ctx), st.c.opts.DrainTimeout)
	}
	if err := step(st.drain, st.g); err != nil {
		st.c.log.Warn("shutdown: batches left uncommitted, they will be redelivered", "messages", st.g.size(), "err", err)
		st.g.abort()
		st.g.batches, st.failed = nil, true
	}
}

func (st *storer[T]) stop() {
	if st.cancel != nil {
		st.cancel()
	}
}

// next returns the next batch, or nil if a write is open and none came
// within FlushInterval of its start; open is false once full is closed.
func (c *consumer[T]) next(full <-chan *batch[T], g *group[T]) (b *batch[T], open bool) {
	if len(g.batches) == 0 {
		b, open = <-full
		return b, open
	}
	t := time.NewTimer(max(c.opts.FlushInterval-time.Since(g.started), 0))
	defer t.Stop()
	select {
	case b, open = <-full:
		return b, open
	case <-t.C:
		return nil, true
	}
}

// push adds b to the group; send then writes it.
func (g *group[T]) push(b *batch[T]) {
	if len(g.batches) == 0 {
		g.started = time.Now()
	}
	g.batches = append(g.batches, b)
}

// send writes the dead letters of the group's batches, once each, and
// sends their items in the open write.
func (c *consumer[T]) send(ctx context.Context, g *group[T]) error {
	for _, b := range g.batches {
		if len(b.dead) == 0 || b.deadWritten || c.opts.DeadLetter == nil {
			continue
		}
		if err := c.retry(ctx, b.size(), "dead-letter write", func(ctx context.Context) error {
			return c.opts.DeadLetter.WriteMessages(ctx, b.dead...)
		}); err != nil {
			return err
		}
		b.deadWritten = true
	}
	return c.store(ctx, g, (*group[T]).send)
}

// commit commits the write, then the offsets of every batch in it.
func (c *consumer[T]) commit(ctx context.Context, g *group[T]) error {
	if err := c.store(ctx, g, (*group[T]).commit); err != nil {
		return err
	}
	if err := c.retry(ctx, g.size(), "commit", func(ctx context.Context) error {
		return c.r.CommitMessages(ctx, g.lastPerPartition()...)
	}); err != nil {
		return err
	}
	c.observe(g)
	clear(g.batches) // let the stored items go
	g.batches, g.added = g.batches[:0], 0
	return nil
}

// store runs step until it succeeds; a failed step abandons the write, so
// the next attempt begins a new one with every batch of the group.
func (c *consumer[T]) store(ctx context.Context, g *group[T], step func(*group[T], context.Context) error) error {
	return c.retry(ctx, g.size(), "store", func(ctx context.Context) error {
		err := step(g, ctx)
		if err != nil {
			g.abort()
		}
		return err
	})
}

func (c *consumer[T]) observe(g *group[T]) {
	m := c.opts.Metrics
	m.flushSeconds.WithLabelValues(c.stage.Name).Observe(time.Since(g.started).Seconds())
	for _, b := range g.batches {
		m.batchSize.WithLabelValues(c.stage.Name).Observe(float64(b.size()))
		m.messages.WithLabelValues(c.stage.Name, "stored").Add(float64(len(b.items)))
		m.messages.WithLabelValues(c.stage.Name, "skipped").Add(float64(b.skipped))
		m.messages.WithLabelValues(c.stage.Name, "dead_lettered").Add(float64(len(b.dead)))
		for reason, n := range b.reasons {
			m.deadLetters.WithLabelValues(c.stage.Name, reason).Add(float64(n))
		}
	}
	m.lastCommit.WithLabelValues(c.stage.Name).SetToCurrentTime()
}

// storeEach is the write of a stage that only has Store: Commit stores each
// added batch in turn.
func storeEach[T any](store func(context.Context, []T) error) func(context.Context) (Write[T], error) {
	return func(context.Context) (Write[T], error) { return &eachWrite[T]{store: store}, nil }
}

type eachWrite[T any] struct {
	store func(context.Context, []T) error
	items [][]T
}

func (w *eachWrite[T]) Add(_ context.Context, items []T) error {
	w.items = append(w.items, items)
	return nil
}

func (w *eachWrite[T]) Commit(ctx context.Context) error {
	for _, items := range w.items {
		if err := w.store(ctx, items); err != nil {
			return err
		}
	}
	return nil
}

func (w *eachWrite[T]) Abort() {}
