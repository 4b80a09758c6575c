package simulate

import (
	"context"
	"fmt"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// Publisher delivers simulated events, typically to the Kafka predictions
// and labels topics. Run calls it from one goroutine.
type Publisher interface {
	PublishPredictions(ctx context.Context, events []event.Prediction) error
	PublishLabels(ctx context.Context, labels []event.Label) error
}

// Stats counts what Run published.
type Stats struct {
	Predictions, Labels int64
	// Shifted counts the predictions made under the domain shift.
	Shifted int64
}

// Pacing of Run. Small batches every tick keep the stream smooth for
// dashboards; the batch cap bounds memory at high rates; the backlog cap
// stops a process resumed after a long pause from flooding the topic.
const (
	tick       = 100 * time.Millisecond
	maxBatch   = 1000
	maxBacklog = 5 * time.Second
)

// Run publishes events at cfg.Rate until ctx is cancelled (returning a nil
// error), cfg.Duration has passed or cfg.Count predictions were published.
// The schedule follows elapsed wall time, not the number of sleeps, so the
// rate holds however late the ticks come. Each event is stamped with its
// scheduled time. A publish error stops the run and is returned. logf, if
// not nil, hears about the shift starting and skipped backlog.
func (g *Generator) Run(ctx context.Context, pub Publisher, logf func(string, ...any)) (Stats, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r := &runner{g: g, pub: pub, logf: logf, start: time.Now()}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		done, err := r.step(ctx, time.Now())
		if ctx.Err() != nil {
			return r.stats, nil
		}
		if err != nil || done {
			return r.stats, err
		}
		select {
		case <-ctx.Done():
			return r.stats, nil
		case <-t.C:
		}
	}
}

// runner is the state of one Run.
type runner struct {
	g      *Generator
	pub    Publisher
	logf   func(string, ...any)
	start  time.Time
	index  int64 // schedule position: events published or skipped so far
	stats  Stats
	logged bool
}

// step publishes every event due by now and reports whether the run is over.
func (r *runner) step(ctx context.Context, now time.Time) (bool, error) {
	cfg := &r.g.cfg
	elapsed, done := now.Sub(r.start), false
	if cfg.Duration > 0 && elapsed >= cfg.Duration {
		elapsed, done = cfg.Duration, true
	}
	due := int64(elapsed.Seconds() * cfg.Rate)
	r.skipBacklog(due)
	n := due - r.index
	if cfg.Count > 0 {
		if left := int64(cfg.Count) - r.stats.Predictions; n >= left {
			n, done = left, true
		}
	}
	for n > 0 {
		k := min(n, maxBatch)
		if err := r.publish(ctx, k); err != nil {
			return true, err
		}
		n -= k
	}
	return done, nil
}

// skipBacklog drops events older than maxBacklog, as a camera that was
// offline simply has no pictures for that time.
func (r *runner) skipBacklog(due int64) {
	limit := int64(r.g.cfg.Rate*maxBacklog.Seconds()) + 1
	if lag := due - r.index; lag > limit {
		r.index += lag - limit
		r.logf("simulate: fell %d events behind; skipped them to keep the rate", lag-limit)
	}
}

// publish generates and publishes the next n scheduled events, predictions
// first so consumers see a prediction before its label.
func (r *runner) publish(ctx context.Context, n int64) error {
	preds := make([]event.Prediction, 0, n)
	var labels []event.Label
	shifted := int64(0)
	for range n {
		ts := r.start.Add(time.Duration(float64(r.index) / r.g.cfg.Rate * float64(time.Second)))
		r.index++
		p, l := r.g.Next(ts)
		preds = append(preds, p)
		if l != nil {
			labels = append(labels, *l)
		}
		if r.g.Shifted(p.Source, ts) {
			shifted++
			r.announceShift(p.Source)
		}
	}
	if err := r.pub.PublishPredictions(ctx, preds); err != nil {
		return fmt.Errorf("simulate: publish %d predictions: %w", len(preds), err)
	}
	r.stats.Predictions += int64(len(preds))
	r.stats.Shifted += shifted
	if len(labels) == 0 {
		return nil
	}
	if err := r.pub.PublishLabels(ctx, labels); err != nil {
		return fmt.Errorf("simulate: publish %d labels: %w", len(labels), err)
	}
	r.stats.Labels += int64(len(labels))
	return nil
}

// announceShift logs the shift once, so a demo's viewer knows when to look
// at the drift dashboards.
func (r *runner) announceShift(source string) {
	if !r.logged {
		r.logged = true
		r.logf("domain shift started on %s: darker lighting and blur", source)
	}
}
