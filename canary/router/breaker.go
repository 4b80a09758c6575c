package router

import (
	"sync"
	"time"
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

	mu        sync.Mutex
	consec    int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
}

func newBreaker(failures int, openFor time.Duration) *breaker {
	return &breaker{failures: failures, openFor: openFor, now: time.Now}
}

// allow reports whether a call may go to the backend now.
func (b *breaker) allow() bool {
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
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if ok {
		b.consec = 0
		return false
	}
	b.consec++
	if b.consec >= b.failures {
		b.openUntil = b.now().Add(b.openFor)
		return true
	}
	return false
}

// open reports whether the breaker currently refuses calls.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consec >= b.failures && b.now().Before(b.openUntil)
}
