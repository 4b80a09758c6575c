package simulate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// recorder is an in-memory Publisher that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	preds  []event.Prediction
	labels []event.Label
	err    error
}

func (r *recorder) PublishPredictions(_ context.Context, events []event.Prediction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.preds = append(r.preds, events...)
	return nil
}

func (r *recorder) PublishLabels(_ context.Context, labels []event.Label) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.labels = append(r.labels, labels...)
	return nil
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.preds), len(r.labels)
}

// logs collects Run's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func TestRunHoldsTheRate(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 50; c.Duration = time.Second; c.LabelFraction = 0.5 })
	rec := &recorder{}
	start := time.Now()
	stats, err := g.Run(context.Background(), rec, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("a 1 s run took %v", d)
	}
	preds, labels := rec.counts()
	if stats.Predictions < 30 || stats.Predictions > 70 {
		t.Errorf("%d predictions in 1 s at 50/s", stats.Predictions)
	}
	if int64(preds) != stats.Predictions || int64(labels) != stats.Labels || labels == 0 {
		t.Errorf("stats %+v, publisher saw %d predictions and %d labels", stats, preds, labels)
	}
	for i := 1; i < preds; i++ {
		if !rec.preds[i].TS.After(rec.preds[i-1].TS) {
			t.Fatalf("timestamps do not increase at %d", i)
		}
	}
}

func TestRunStopsAtCount(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 1000; c.Count = 25 })
	rec := &recorder{}
	stats, err := g.Run(context.Background(), rec, nil)
	if err != nil || stats.Predictions != 25 {
		t.Errorf("Run = %+v, %v; want 25 predictions", stats, err)
	}
	if n, _ := rec.counts(); n != 25 {
		t.Errorf("publisher saw %d predictions, want 25", n)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 100 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	stats, err := g.Run(ctx, &recorder{}, nil)
	if err != nil {
		t.Errorf("Run after cancel returned %v, want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v to notice the cancel", d)
	}
	if stats.Predictions == 0 {
		t.Error("nothing was published before the cancel")
	}
}

func TestRunAnnouncesTheShiftOnce(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 1000; c.Count = 90; c.ShiftAfter = 0 })
	var l logs
	stats, err := g.Run(context.Background(), &recorder{}, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Shifted != 30 {
		t.Errorf("%d shifted predictions of 90 over three cameras, want 30", stats.Shifted)
	}
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, "domain shift started on cam-2: darker lighting and blur") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("shift announced %d times: %q", n, l.lines)
	}
}

func TestRunReturnsPublishErrors(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 1000; c.Duration = 5 * time.Second })
	broken := errors.New("broker down")
	stats, err := g.Run(context.Background(), &recorder{err: broken}, nil)
	if !errors.Is(err, broken) {
		t.Errorf("Run = %v, want the publisher's error", err)
	}
	if stats.Predictions != 0 {
		t.Errorf("stats count unpublished events: %+v", stats)
	}
}

// The pacing follows elapsed time, so it is tested here on a fake clock.
func TestStepPublishesWhatIsDue(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 40 })
	rec := &recorder{}
	r := &runner{g: g, pub: rec, logf: t.Logf, start: t0}
	ctx := context.Background()
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {100 * time.Millisecond, 4}, {110 * time.Millisecond, 4}, {2500 * time.Millisecond, 100}} {
		if done, err := r.step(ctx, t0.Add(tc.at)); done || err != nil {
			t.Fatalf("step = %v, %v", done, err)
		}
		if n, _ := rec.counts(); n != tc.want {
			t.Errorf("at +%v: %d published, want %d", tc.at, n, tc.want)
		}
	}
	if got, want := rec.preds[99].TS, t0.Add(99*25*time.Millisecond); !got.Equal(want) {
		t.Errorf("event 99 stamped %v, want its scheduled time %v", got, want)
	}
}

func TestStepSkipsALongBacklog(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 40 })
	rec := &recorder{}
	var l logs
	r := &runner{g: g, pub: rec, logf: l.logf, start: t0}
	r.step(context.Background(), t0.Add(time.Hour))
	n, _ := rec.counts()
	if limit := int(40*maxBacklog.Seconds()) + 1; n != limit {
		t.Errorf("after an hour's pause %d events published, want the %d of the backlog limit", n, limit)
	}
	if last := rec.preds[n-1].TS; t0.Add(time.Hour).Sub(last) > time.Second {
		t.Errorf("last event stamped %v, want close to the resume time", last)
	}
	if len(l.lines) != 1 || !strings.Contains(l.lines[0], "skipped") {
		t.Errorf("skip not logged: %q", l.lines)
	}
}

func TestStepEndsAtDuration(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.Rate = 40; c.Duration = time.Second })
	rec := &recorder{}
	r := &runner{g: g, pub: rec, logf: t.Logf, start: t0}
	done, err := r.step(context.Background(), t0.Add(3*time.Second))
	if n, _ := rec.counts(); !done || err != nil || n != 40 {
		t.Errorf("step past the duration: done %v, err %v, %d published; want done with 40", done, err, n)
	}
}
