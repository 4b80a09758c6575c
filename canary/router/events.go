package router

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lookout-dev/lookout/internal/event"
)

// requestMeta is what the event contract needs from the request itself.
type requestMeta struct {
	source    string
	imageURIs []string // per instance; a single value applies to all
}

func (r *Router) meta(req *fasthttp.Request) requestMeta {
	var m requestMeta
	src := req.Header.Peek(r.sourceHeader)
	if len(src) == 0 {
		src = req.Header.Peek(r.keyHeader)
	}
	m.source = "unknown"
	if len(src) > 0 {
		m.source = string(src)
	}
	if u := req.Header.Peek(r.imageHeader); len(u) > 0 {
		m.imageURIs = []string{string(u)}
	} else {
		m.imageURIs = ImageURIs(req.Body(), r.cfg.ImageURIField)
	}
	return m
}

func (m requestMeta) imageURI(i int) string {
	switch {
	case len(m.imageURIs) == 1:
		return m.imageURIs[0]
	case i < len(m.imageURIs):
		return m.imageURIs[i]
	}
	return ""
}

// emit publishes one event per prediction. Events that would not pass the
// contract (say, no image URI) are counted and not sent: ingest would only
// dead-letter them.
func (r *Router) emit(outs []Output, meta requestMeta, reqID string, be *backend, arm, rolloutID string, latency time.Duration) {
	if r.pub == nil {
		return
	}
	ms := float64(latency.Microseconds()) / 1000
	now := time.Now()
	for i, o := range outs {
		id := reqID
		if len(outs) > 1 {
			id += "-" + strconv.Itoa(i)
		}
		if arm == event.ArmShadow {
			id += "-shadow"
		}
		p := event.Prediction{
			SchemaVersion: event.SchemaVersion, EventID: id, TS: now,
			Model: r.cfg.Model, ModelVersion: be.Version, Source: meta.source, Task: r.cfg.Task,
			ImageURI: meta.imageURI(i), PredictedClass: o.Class, Probs: event.ProbsOf(o.Probs), Boxes: o.Boxes,
			LatencyMS: &ms, Arm: arm, RolloutID: rolloutID,
		}
		if p.Task == event.TaskDetection {
			p.PredictedClass, p.Probs = "", nil
		}
		if err := p.Validate(); err != nil {
			r.m.events.WithLabelValues("invalid").Inc()
			r.log.Debug("routed prediction does not fit the event contract", "reason", event.ReasonOf(err), "err", err)
			continue
		}
		r.pub.Publish(p)
	}
}
