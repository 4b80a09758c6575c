package router

import (
	"context"
	"net/http"
	"sync"

	"github.com/lookout-dev/lookout/internal/event"
)

// shadowJob is one mirrored request, with stable's answer for comparison.
type shadowJob struct {
	req    *http.Request
	body   []byte
	rt     *route
	stable []Output
	meta   requestMeta
	reqID  string
}

// shadowPool mirrors requests to the canary off the caller's path: a bounded
// queue (full → drop and count) drained by a fixed set of workers.
type shadowPool struct {
	r       *Router
	queue   chan shadowJob
	workers int
	wg      sync.WaitGroup
}

func newShadowPool(r *Router, size, workers int) *shadowPool {
	return &shadowPool{r: r, queue: make(chan shadowJob, size), workers: workers}
}

func (p *shadowPool) start(ctx context.Context) {
	for range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.queue:
					p.run(ctx, j)
				}
			}
		}()
	}
}

func (p *shadowPool) wait() { p.wg.Wait() }

// enqueue never blocks.
func (p *shadowPool) enqueue(j shadowJob) {
	select {
	case p.queue <- j:
	default:
		p.r.m.shadow.WithLabelValues("dropped_queue_full").Inc()
	}
}

func (p *shadowPool) run(ctx context.Context, j shadowJob) {
	r, be := p.r, j.rt.canary
	if !be.breaker.allow() {
		r.m.shadow.WithLabelValues("skipped_breaker_open").Inc()
		return
	}
	c := r.do(ctx, be, event.ArmShadow, j.req, j.body)
	if c.failed() {
		r.m.shadow.WithLabelValues("failed").Inc()
		r.window.observe(event.ArmCanary, false, c.latency, nil)
		return
	}
	r.m.shadow.WithLabelValues("sent").Inc()
	outs, err := r.extract.Extract(c.body)
	if err != nil {
		r.m.events.WithLabelValues("unparsed").Inc()
	}
	r.window.observe(event.ArmCanary, true, c.latency, outs)
	agreed, total := 0, 0
	for i := range min(len(outs), len(j.stable)) {
		total++
		if outs[i].Class == j.stable[i].Class {
			agreed++
		}
	}
	r.window.shadowCompared(agreed, total)
	r.emit(outs, j.meta, j.reqID, be, event.ArmShadow, j.rt.RolloutID, c.latency)
}
