package router

import (
	"sync"
	"time"
)

// maxWindowValues bounds the latency and confidence samples kept per arm; past
// it the oldest are overwritten, so memory stays flat on long steps.
const maxWindowValues = 20000

// ArmStats is what one arm did since the window was last reset: the inputs of
// rollout analysis.
type ArmStats struct {
	Requests int
	Errors   int
	// Latencies (seconds) and Confidences are the most recent values.
	Latencies   []float64
	Confidences []float64
	// Classes counts predicted classes.
	Classes map[string]float64
	// ShadowCompared and ShadowAgreed count mirrored predictions compared
	// with stable's answer to the same request (canary arm only).
	ShadowCompared int
	ShadowAgreed   int
}

// Window collects per-arm observations for analysis.
type Window struct {
	mu    sync.Mutex
	since time.Time
	arms  map[string]*armWindow
}

type armWindow struct {
	ArmStats
	latNext, confNext int
}

// NewWindow returns an empty window.
func NewWindow() *Window {
	return &Window{since: time.Now(), arms: map[string]*armWindow{}}
}

func (w *Window) arm(name string) *armWindow {
	a := w.arms[name]
	if a == nil {
		a = &armWindow{ArmStats: ArmStats{Classes: map[string]float64{}}}
		w.arms[name] = a
	}
	return a
}

// ring appends v to s, overwriting the oldest value once s is full.
func ring(s []float64, next *int, v float64) []float64 {
	if len(s) < maxWindowValues {
		return append(s, v)
	}
	s[*next] = v
	*next = (*next + 1) % maxWindowValues
	return s
}

// observe records one backend call and the predictions it returned.
func (w *Window) observe(arm string, ok bool, latency time.Duration, outs []Output) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.arm(arm)
	a.Requests++
	if !ok {
		a.Errors++
		return
	}
	a.Latencies = ring(a.Latencies, &a.latNext, latency.Seconds())
	for _, o := range outs {
		if c := o.Confidence(); c > 0 {
			a.Confidences = ring(a.Confidences, &a.confNext, c)
		}
		if o.Class != "" {
			a.Classes[o.Class]++
		}
	}
}

// shadowCompared records whether the canary agreed with stable on a mirrored request.
func (w *Window) shadowCompared(agreed, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.arm("canary")
	a.ShadowCompared += total
	a.ShadowAgreed += agreed
}

// Snapshot returns a copy of every arm's statistics and the window's start.
func (w *Window) Snapshot() (map[string]ArmStats, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]ArmStats, len(w.arms))
	for name, a := range w.arms {
		s := a.ArmStats
		s.Latencies = append([]float64(nil), a.Latencies...)
		s.Confidences = append([]float64(nil), a.Confidences...)
		s.Classes = make(map[string]float64, len(a.Classes))
		for c, n := range a.Classes {
			s.Classes[c] = n
		}
		out[name] = s
	}
	return out, w.since
}

// Reset empties the window (at a rollout step change).
func (w *Window) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.arms = map[string]*armWindow{}
	w.since = time.Now()
}
