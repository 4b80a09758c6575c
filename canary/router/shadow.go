package router

import (
	"context"
	"slices"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/lookout-dev/lookout/internal/event"
)

// shadowJob is one mirrored request, with stable's answer for comparison.
// req is the job's own copy: fasthttp reuses the caller's request as soon as
// the handler returns.
type shadowJob struct {
	req    *fasthttp.Request
	path   []byte
	rt     *route
	stable []Output
	meta   requestMeta
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
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.queue:
					p.run(j, resp)
					fasthttp.ReleaseRequest(j.req)
				}
			}
		}()
	}
}

func (p *shadowPool) wait() { p.wg.Wait() }

// enqueue copies the caller's request and queues it; it never blocks.
func (p *shadowPool) enqueue(x *exchange, rt *route, stable []Output, meta requestMeta) {
	if len(p.queue) == cap(p.queue) {
		p.r.m.shadow.WithLabelValues("dropped_queue_full").Inc()
		return
	}
	meta.imageURIs = slices.Clone(meta.imageURIs) // the exchange's scratch
	j := shadowJob{req: fasthttp.AcquireRequest(), rt: rt, stable: stable, meta: meta}
	x.req.CopyTo(j.req)
	if len(x.path) > 0 {
		j.path = append([]byte(nil), x.path...)
	}
	select {
	case p.queue <- j:
	default:
		fasthttp.ReleaseRequest(j.req)
		p.r.m.shadow.WithLabelValues("dropped_queue_full").Inc()
	}
}

func (p *shadowPool) run(j shadowJob, resp *fasthttp.Response) {
	r, be := p.r, j.rt.canary
	if !be.breaker.allow() {
		r.m.shadow.WithLabelValues("skipped_breaker_open").Inc()
		return
	}
	c := r.do(be, armShadow, j.req, resp, j.path, nil)
	if c.failed() {
		r.m.shadow.WithLabelValues("failed").Inc()
		r.window.observe(event.ArmCanary, false, c.latency, nil)
		return
	}
	r.m.shadow.WithLabelValues("sent").Inc()
	outs, err := r.extract.Extract(resp.Body())
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
	r.emit(outs, j.meta, be, event.ArmShadow, j.rt.RolloutID, &c)
}
