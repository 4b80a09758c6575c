package router

import (
	"strconv"

	"github.com/lookout-dev/lookout/internal/event"
)

// requestMeta is what the event contract needs from the request itself.
type requestMeta struct {
	reqID     string
	source    string
	imageURIs []string // per instance; a single value applies to all
}

// meta reads the request id (the caller's, or a generated one), the source
// and the image URIs of x's request. Their strings share one allocation;
// imageURIs is x's scratch, valid until x is released (a shadow job clones
// it).
func (r *Router) meta(x *exchange) requestMeta {
	req := x.req
	b := x.scratch[:0]
	if id := req.Header.Peek(r.idHeader); len(id) > 0 && len(id) <= 200 {
		b = append(b, id...)
	} else {
		b = append(b, idPrefix...)
		b = strconv.AppendUint(b, idCounter.Add(1), 36)
	}
	idEnd := len(b)
	src := req.Header.Peek(r.sourceHeader)
	if len(src) == 0 {
		src = req.Header.Peek(r.keyHeader)
	}
	b = append(b, src...)
	srcEnd := len(b)
	ends := x.ends[:0]
	if u := req.Header.Peek(r.imageHeader); len(u) > 0 {
		b = append(b, u...)
		ends = append(ends, len(b))
	} else {
		b, ends, _ = appendImageURIs(b, ends, req.Body(), r.cfg.ImageURIField)
	}
	x.scratch, x.ends = b, ends
	s := string(b)
	m := requestMeta{reqID: s[:idEnd], source: s[idEnd:srcEnd]}
	if m.source == "" {
		m.source = "unknown"
	}
	uris, start := x.uris[:0], srcEnd
	for _, e := range ends {
		uris = append(uris, s[start:e])
		start = e
	}
	x.uris, m.imageURIs = uris, uris
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
func (r *Router) emit(outs []Output, meta requestMeta, be *backend, arm, rolloutID string, c *call) {
	if r.pub == nil {
		return
	}
	ms := float64(c.latency.Microseconds()) / 1000
	for i, o := range outs {
		id := meta.reqID
		if len(outs) > 1 {
			id += "-" + strconv.Itoa(i)
		}
		if arm == event.ArmShadow {
			id += "-shadow"
		}
		p := event.Prediction{
			SchemaVersion: event.SchemaVersion, EventID: id, TS: c.end,
			Model: r.cfg.Model, ModelVersion: be.Version, Source: meta.source, Task: r.cfg.Task,
			ImageURI: meta.imageURI(i), PredictedClass: o.Class, Probs: o.Probs, Boxes: o.Boxes,
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
