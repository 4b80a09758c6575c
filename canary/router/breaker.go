package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// breaker is a consecutive-failure circuit breaker. Closed, it lets every
// call through; after `failures` failures in a row it opens for `openFor`,
// then lets a single trial call through (half-open) whose outcome closes or
// re-opens it. A broken canary therefore costs one failed call per openFor
// instead of one per request.
type breaker struct {
	failures int
	openFor  time.Duration
	now      func() time.Time
	gauge    prometheus.Gauge // 1 while open; nil for none

	// dirty is set while there are failures in a row or a trial call in
	// flight. A healthy backend's calls, nearly all of them, read only this
	// flag: no lock shared by every request. (A success that races with a
	// failure may then not reset the count: the count is approximate under
	// concurrency either way.)
	dirty atomic.Bool

	mu        sync.Mutex
	consec    int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
	reported  bool // what gauge was last set to
}

func newBreaker(failures int, openFor time.Duration, gauge prometheus.Gauge) *breaker {
	if gauge != nil {
		gauge.Set(0)
	}
	return &breaker{failures: failures, openFor: openFor, now: time.Now, gauge: gauge}
}

// allow reports whether a call may go to the backend now.
func (b *breaker) allow() bool {
	if !b.dirty.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.consec < b.failures {
		return true
	}
	if b.now().Before(b.openUntil) || b.trial {
		return false
	}
	b.trial = true
	return true
}

// record reports a call's outcome and returns whether the breaker is now open.
func (b *breaker) record(ok bool) (open bool) {
	if ok && !b.dirty.Load() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if ok {
		b.consec = 0
	} else {
		b.consec++
		if b.consec >= b.failures {
			b.openUntil = b.now().Add(b.openFor)
			open = true
		}
	}
	b.dirty.Store(b.consec > 0)
	// Written under the lock, so the gauge ends on the latest state.
	if b.gauge != nil && open != b.reported {
		b.reported = open
		b.gauge.Set(b2f(open))
	}
	return open
}

// open reports whether the breaker currently refuses calls.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consec >= b.failures && b.now().Before(b.openUntil)
}
