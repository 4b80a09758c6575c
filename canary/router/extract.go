package router

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/valyala/fastjson"

	"github.com/lookout-dev/lookout/internal/event"
)

// Output is one prediction read from a model server's response.
type Output struct {
	// Class is the predicted class (argmax of Probs when the server gave none).
	Class string
	// Probs is the class → probability map, when the server returned scores.
	Probs map[string]float64
	// Boxes holds detections.
	Boxes []event.Box
}

// Confidence is the top probability (or top box score), 0 when unknown.
func (o Output) Confidence() float64 {
	best := 0.0
	for _, p := range o.Probs {
		best = max(best, p)
	}
	for _, b := range o.Boxes {
		best = max(best, b.Score)
	}
	return best
}

// Extractor reads predictions from responses of KServe v1
// ({"predictions": [...]}) and Open Inference Protocol v2 ({"outputs": [...]})
// servers. It parses with fastjson: it runs on every routed request, where
// encoding/json's reflection cost as much as the proxying. Its zero value
// is ready to use; it must not be copied after first use.
type Extractor struct {
	// Classes names the columns of probability arrays; without it columns
	// are named "0", "1", ….
	Classes []string
	// OutputName picks the v2 output; empty takes the first numeric one.
	OutputName string

	names names
}

// parsers serve Extract and ImageURIs; a parser's values live until its next
// parse, so every string kept is copied (or interned) first.
var parsers fastjson.ParserPool

// names interns class names: the same dozen names come back in every
// response, and sharing them saves an allocation per class per request.
// Lookups are lock-free; the bounded table is replaced on each addition.
type names struct {
	mu    sync.Mutex
	table atomic.Pointer[map[string]string]
}

const maxNames = 1024

func (n *names) intern(b []byte) string {
	if t := n.table.Load(); t != nil {
		if s, ok := (*t)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.table.Load()
	if old != nil && len(*old) >= maxNames {
		return s
	}
	t := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			t[k] = v
		}
	}
	t[s] = s
	n.table.Store(&t)
	return s
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

var errNoPredictions = errors.New("response has neither predictions nor outputs")

// Extract returns the predictions in body, in request order.
func (x *Extractor) Extract(body []byte) ([]Output, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	top, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if preds := top.Get("predictions"); notNull(preds) {
		items, err := preds.Array()
		if err != nil {
			return nil, fmt.Errorf("decode response: predictions: %w", err)
		}
		out := make([]Output, 0, len(items))
		for i, item := range items {
			o, err := x.v1Item(item)
			if err != nil {
				return nil, fmt.Errorf("predictions[%d]: %w", i, err)
			}
			out = append(out, o)
		}
		return out, nil
	}
	if outs := top.Get("outputs"); notNull(outs) {
		tensors, err := outs.Array()
		if err != nil {
			return nil, fmt.Errorf("decode response: outputs: %w", err)
		}
		return x.v2(tensors)
	}
	return nil, errNoPredictions
}

func notNull(v *fastjson.Value) bool { return v != nil && v.Type() != fastjson.TypeNull }

func (x *Extractor) v1Item(v *fastjson.Value) (Output, error) {
	switch v.Type() {
	case fastjson.TypeArray:
		nums, err := numbers(v)
		if err != nil {
			return Output{}, fmt.Errorf("prediction array: %w", err)
		}
		return x.fromRow(nums), nil
	case fastjson.TypeString:
		return Output{Class: x.names.intern(v.GetStringBytes())}, nil
	case fastjson.TypeObject:
	default:
		return Output{}, errors.New("unsupported prediction shape")
	}
	var o Output
	var err error
	if o.Class, err = x.optString(v, "predicted_class"); err != nil {
		return Output{}, err
	}
	if o.Class == "" {
		if o.Class, err = x.optString(v, "label"); err != nil {
			return Output{}, err
		}
	}
	if b := v.Get("boxes"); notNull(b) {
		if o.Boxes, err = x.boxes(b); err != nil {
			return Output{}, fmt.Errorf("unsupported prediction shape: %w", err)
		}
	}
	p := v.Get("probs")
	if !notNull(p) {
		p = v.Get("probabilities")
	}
	if notNull(p) {
		if o.Probs, err = x.probs(p); err != nil {
			return Output{}, err
		}
	}
	if o.Class == "" {
		o.Class = argmax(o.Probs)
	}
	return o, nil
}

// optString returns the string field key of v, "" when absent or null.
func (x *Extractor) optString(v *fastjson.Value, key string) (string, error) {
	f := v.Get(key)
	if !notNull(f) {
		return "", nil
	}
	b, err := f.StringBytes()
	if err != nil {
		return "", fmt.Errorf("unsupported prediction shape: %s: %w", key, err)
	}
	return x.names.intern(b), nil
}

// probs reads an object of class → probability or an array of probabilities.
func (x *Extractor) probs(p *fastjson.Value) (map[string]float64, error) {
	if p.Type() == fastjson.TypeArray {
		nums, err := numbers(p)
		if err != nil {
			return nil, errors.New("probs is neither an object nor an array of numbers")
		}
		return x.fromRow(nums).Probs, nil
	}
	obj, err := p.Object()
	if err != nil {
		return nil, errors.New("probs is neither an object nor an array of numbers")
	}
	m := make(map[string]float64, obj.Len())
	obj.Visit(func(k []byte, v *fastjson.Value) {
		f, ferr := v.Float64()
		if ferr != nil && err == nil {
			err = errors.New("probs is neither an object nor an array of numbers")
		}
		m[x.names.intern(k)] = f
	})
	return m, err
}

func (x *Extractor) boxes(v *fastjson.Value) ([]event.Box, error) {
	items, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("boxes: %w", err)
	}
	out := make([]event.Box, len(items))
	for i, it := range items {
		b := &out[i]
		if it.Type() != fastjson.TypeObject {
			return nil, fmt.Errorf("boxes[%d] is not an object", i)
		}
		if c := it.Get("class"); notNull(c) {
			cb, err := c.StringBytes()
			if err != nil {
				return nil, fmt.Errorf("boxes[%d].class: %w", i, err)
			}
			b.Class = x.names.intern(cb)
		}
		if s := it.Get("score"); notNull(s) {
			if b.Score, err = s.Float64(); err != nil {
				return nil, fmt.Errorf("boxes[%d].score: %w", i, err)
			}
		}
		if xy := it.Get("xyxy"); notNull(xy) {
			nums, err := numbers(xy)
			if err != nil || len(nums) != 4 {
				return nil, fmt.Errorf("boxes[%d].xyxy is not 4 numbers", i)
			}
			copy(b.XYXY[:], nums)
		}
	}
	return out, nil
}

// numbers reads an array of numbers.
func numbers(v *fastjson.Value) ([]float64, error) {
	items, err := v.Array()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(items))
	for i, it := range items {
		if out[i], err = it.Float64(); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return out, nil
}

func (x *Extractor) v2(outputs []*fastjson.Value) ([]Output, error) {
	for _, t := range outputs {
		name := string(t.GetStringBytes("name"))
		if x.OutputName != "" && name != x.OutputName {
			continue
		}
		data := t.GetArray("data")
		if string(t.GetStringBytes("datatype")) == "BYTES" {
			if x.OutputName == "" {
				continue
			}
			out := make([]Output, len(data))
			for i, d := range data {
				b, err := d.StringBytes()
				if err != nil {
					return nil, fmt.Errorf("output %s: %w", name, err)
				}
				out[i].Class = x.names.intern(b)
			}
			return out, nil
		}
		return x.v2Numeric(name, t.GetArray("shape"), data)
	}
	return nil, fmt.Errorf("no usable v2 output (output_name %q)", x.OutputName)
}

func (x *Extractor) v2Numeric(name string, shape, data []*fastjson.Value) ([]Output, error) {
	flat := make([]float64, len(data))
	for i, d := range data {
		f, err := d.Float64()
		if err != nil {
			return nil, fmt.Errorf("output %s: data[%d] is not a number", name, i)
		}
		flat[i] = f
	}
	rows, cols := 1, len(flat)
	if len(shape) == 2 {
		rows, cols = shape[0].GetInt(), shape[1].GetInt()
	}
	if rows*cols != len(flat) || cols == 0 {
		return nil, fmt.Errorf("output %s: shape %v does not match %d values", name, shape, len(flat))
	}
	out := make([]Output, rows)
	for r := range rows {
		out[r] = x.fromRow(flat[r*cols : (r+1)*cols])
	}
	return out, nil
}

func (x *Extractor) fromRow(row []float64) Output {
	probs := make(map[string]float64, len(row))
	for i, p := range row {
		name := strconv.Itoa(i)
		if len(x.Classes) == len(row) {
			name = x.Classes[i]
		}
		probs[name] = p
	}
	return Output{Class: argmax(probs), Probs: probs}
}

func argmax(probs map[string]float64) string {
	best, bestP := "", math.Inf(-1)
	for c, p := range probs {
		if p > bestP || (p == bestP && c < best) {
			best, bestP = c, p
		}
	}
	return best
}

// ImageURIs returns, per instance of a request body, the value of field:
// KServe v1 {"instances": [{field: …}]}, v2 {"inputs": [{"name": field,
// "data": [...]}]}, or a single top-level field. Missing values are "".
func ImageURIs(body []byte, field string) []string {
	if field == "" {
		return nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil
	}
	top, err := v.Object()
	if err != nil {
		return nil
	}
	// Instances that are not objects (tensors) carry no field: ignore them.
	if inst := top.Get("instances"); allObjects(inst) {
		items := inst.GetArray()
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = str(it.Get(field))
		}
		return out
	}
	if inputs := top.Get("inputs"); allObjects(inputs) {
		for _, in := range inputs.GetArray() {
			if string(in.GetStringBytes("name")) != field {
				continue
			}
			data := in.GetArray("data")
			out := make([]string, len(data))
			for i, d := range data {
				out[i] = str(d)
			}
			return out
		}
	}
	if f := top.Get(field); f != nil {
		return []string{str(f)}
	}
	return nil
}

// allObjects reports a non-empty array of objects (or nulls).
func allObjects(v *fastjson.Value) bool {
	if v == nil || v.Type() != fastjson.TypeArray {
		return false
	}
	items := v.GetArray()
	for _, it := range items {
		if t := it.Type(); t != fastjson.TypeObject && t != fastjson.TypeNull {
			return false
		}
	}
	return len(items) > 0
}

// str copies v's string value; "" when v is absent or not a string.
func str(v *fastjson.Value) string {
	if v == nil || v.Type() != fastjson.TypeString {
		return ""
	}
	return string(v.GetStringBytes())
}
