package event

import (
	"time"

	"github.com/valyala/fastjson"
)

// Predictions arrive at 100k/s and more; encoding/json's reflection costs
// ~10 µs an event, so the hot path parses with fastjson and fills the struct
// by hand. Labels, far rarer, keep encoding/json.
var parsers fastjson.ParserPool

// interner shares the strings that repeat from event to event (model,
// source, class names): fewer allocations, less garbage to collect. It is
// bounded so hostile producers cannot grow it.
type interner map[string]string

// decodeState is what a Decoder keeps between parses: interned names and
// the slab Probs are carved from. It is not safe for concurrent use: each
// Decoder owns one and locks around a parse. A nil *decodeState interns
// nothing and allocates per event.
type decodeState struct {
	intern interner
	slab   []ClassScore
	read   []ClassScore // scratch: the probs of the event being parsed, in wire order
	order  probsOrder
}

// str returns b as a string, interned when st has an interner.
func (st *decodeState) str(b []byte) string {
	if st == nil {
		return string(b)
	}
	return st.intern.str(b)
}

const maxInterned = 4096

func (in interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
}

func parsePrediction(data []byte, in *decodeState) (Prediction, error) {
	if len(data) > MaxEventBytes {
		return Prediction{}, invalid(ReasonTooLarge, "event is %d bytes, limit %d", len(data), MaxEventBytes)
	}
	parser := parsers.Get()
	defer parsers.Put(parser)
	v, err := parser.ParseBytes(data)
	if err != nil {
		return Prediction{}, invalid(ReasonMalformedJSON, "%v", err)
	}
	obj, err := v.Object()
	if err != nil {
		return Prediction{}, invalid(ReasonWrongType, "event must be a JSON object, got %s", v.Type())
	}
	var p Prediction
	var ferr error
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if ferr == nil && v.Type() != fastjson.TypeNull {
			ferr = p.setField(key, v, in)
		}
	})
	return p, ferr
}

// setField takes the key as bytes: a switch on string(key) converts
// without allocating, which a string parameter would not.
func (p *Prediction) setField(key []byte, v *fastjson.Value, in *decodeState) error {
	var err error
	switch string(key) {
	case "schema_version":
		p.SchemaVersion, err = intField("schema_version", v)
	case "event_id":
		p.EventID, err = stringField("event_id", v)
	case "ts":
		p.TS, err = timeField("ts", v)
	case "model":
		p.Model, err = internField("model", v, in)
	case "model_version":
		p.ModelVersion, err = internField("model_version", v, in)
	case "source":
		p.Source, err = internField("source", v, in)
	case "task":
		p.Task, err = internField("task", v, in)
	case "image_uri":
		p.ImageURI, err = stringField("image_uri", v)
	case "predicted_class":
		p.PredictedClass, err = internField("predicted_class", v, in)
	case "arm":
		p.Arm, err = internField("arm", v, in)
	case "rollout_id":
		p.RolloutID, err = internField("rollout_id", v, in)
	case "latency_ms":
		var f float64
		f, err = floatField("latency_ms", v)
		p.LatencyMS = &f
	case "probs":
		p.Probs, err = probsField(v, in)
	case "top_k":
		p.TopK, err = topKField(v)
	case "boxes":
		p.Boxes, err = boxesField(v)
	}
	return err
}

func wrongType(field string, v *fastjson.Value, want string) error {
	return invalid(ReasonWrongType, "field %q: got JSON %s, want %s", field, v.Type(), want)
}

// missing reports a nested field that is absent: Get returns nil for it.
func missing(field string) error {
	return invalid(ReasonMissingField, "%s is required", field)
}

func stringField(field string, v *fastjson.Value) (string, error) {
	if v == nil {
		return "", missing(field)
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", wrongType(field, v, "string")
	}
	return string(b), nil
}

func internField(field string, v *fastjson.Value, in *decodeState) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", wrongType(field, v, "string")
	}
	return in.str(b), nil
}

func floatField(field string, v *fastjson.Value) (float64, error) {
	if v == nil {
		return 0, missing(field)
	}
	f, err := v.Float64()
	if err != nil {
		return 0, wrongType(field, v, "number")
	}
	return f, nil
}

func intField(field string, v *fastjson.Value) (int, error) {
	n, err := v.Int()
	if err != nil {
		return 0, wrongType(field, v, "integer")
	}
	return n, nil
}

func timeField(field string, v *fastjson.Value) (time.Time, error) {
	s, err := v.StringBytes()
	if err != nil {
		return time.Time{}, wrongType(field, v, "RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, invalid(ReasonBadTimestamp, "ts is not RFC 3339: %q", truncate(string(s)))
	}
	return t, nil
}

// probsSlab is how many ClassScores a decoder allocates at once to carve
// events' Probs from: one allocation per few hundred events instead of one
// per event.
const probsSlab = 4096

// probsBuf returns an empty Probs with room for exactly n entries, carved
// from the decoder's slab when it has one. The full slice expression caps
// it, so appending never spills into a neighbour's entries.
func (st *decodeState) probsBuf(n int) Probs {
	if st == nil || n > probsSlab/8 {
		return make(Probs, 0, n)
	}
	if cap(st.slab)-len(st.slab) < n {
		st.slab = make([]ClassScore, 0, probsSlab)
	}
	i := len(st.slab)
	st.slab = st.slab[:i+n]
	return Probs(st.slab[i : i : i+n])
}

func probsField(v *fastjson.Value, st *decodeState) (Probs, error) {
	o, err := v.Object()
	if err != nil {
		return nil, wrongType("probs", v, "object of class → probability")
	}
	if o.Len() > maxClasses {
		return nil, invalid(ReasonBadProbabilities, "%d classes, limit %d", o.Len(), maxClasses)
	}
	var read Probs
	if st == nil {
		read = make(Probs, 0, o.Len())
	} else {
		read = st.read[:0]
	}
	var ferr error
	o.Visit(func(key []byte, v *fastjson.Value) {
		if ferr != nil {
			return
		}
		f, err := v.Float64()
		if err != nil {
			ferr = wrongType("probs", v, "number")
			return
		}
		read = append(read, ClassScore{Class: st.str(key), Score: f})
	})
	if ferr != nil {
		return nil, ferr
	}
	if st == nil {
		return sortProbs(read), nil
	}
	st.read = read
	if !st.order.matches(read) {
		st.order.learn(read)
	}
	probs := st.probsBuf(len(st.order.perm))
	for _, i := range st.order.perm {
		probs = append(probs, read[i])
	}
	return probs, nil
}

// probsOrder remembers how the previous event's classes, in the order its
// producer wrote them, map to sorted order. A producer writes the same
// classes in the same order event after event, so the decoder checks that
// (a pointer comparison per interned name) instead of sorting again.
type probsOrder struct {
	wire []string // the classes as the last learned event listed them
	perm []int    // perm[k]: wire index of the k-th class in sorted order (the last one of repeats)
}

// matches reports whether read lists exactly the classes of o.wire, in the
// same order.
func (o *probsOrder) matches(read []ClassScore) bool {
	if len(read) != len(o.wire) || len(read) == 0 {
		return false
	}
	for i, e := range read {
		if e.Class != o.wire[i] {
			return false
		}
	}
	return true
}

// learn records the order of read's classes and the permutation that sorts
// them, dropping repeats but the last, as sortProbs does.
func (o *probsOrder) learn(read []ClassScore) {
	o.wire = o.wire[:0]
	idx := make(Probs, len(read)) // Score carries the wire index through the sort
	for i, e := range read {
		o.wire = append(o.wire, e.Class)
		idx[i] = ClassScore{Class: e.Class, Score: float64(i)}
	}
	idx = sortProbs(idx)
	o.perm = o.perm[:0]
	for _, e := range idx {
		o.perm = append(o.perm, int(e.Score))
	}
}

func topKField(v *fastjson.Value) ([]ClassScore, error) {
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType("top_k", v, "array")
	}
	if len(arr) > maxClasses {
		return nil, invalid(ReasonBadProbabilities, "%d top_k entries, limit %d", len(arr), maxClasses)
	}
	out := make([]ClassScore, len(arr))
	for i, e := range arr {
		if e.Type() != fastjson.TypeObject {
			return nil, wrongType("top_k", e, "object")
		}
		if out[i].Class, err = stringField("top_k.class", e.Get("class")); err != nil {
			return nil, err
		}
		if out[i].Score, err = floatField("top_k.score", e.Get("score")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func boxesField(v *fastjson.Value) ([]Box, error) {
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType("boxes", v, "array")
	}
	if len(arr) > maxBoxes {
		return nil, invalid(ReasonBadBoxes, "%d boxes, limit %d", len(arr), maxBoxes)
	}
	out := make([]Box, len(arr))
	for i, e := range arr {
		if out[i], err = boxField(i, e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func boxField(i int, e *fastjson.Value) (Box, error) {
	var b Box
	if e.Type() != fastjson.TypeObject {
		return b, wrongType("boxes", e, "object")
	}
	var err error
	if b.Class, err = stringField("boxes.class", e.Get("class")); err != nil {
		return b, err
	}
	if b.Score, err = floatField("boxes.score", e.Get("score")); err != nil {
		return b, err
	}
	xyxy := e.GetArray("xyxy")
	if len(xyxy) != 4 {
		return b, invalid(ReasonBadBoxes, "box %d: xyxy needs exactly 4 numbers", i)
	}
	for j, c := range xyxy {
		if b.XYXY[j], err = floatField("boxes.xyxy", c); err != nil {
			return b, err
		}
	}
	return b, nil
}
