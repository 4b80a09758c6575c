package router

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fastjson"

	"github.com/lookout-dev/lookout/internal/event"
)

// Output is one prediction read from a model server's response.
type Output struct {
	// Class is the predicted class (argmax of Probs when the server gave none).
	Class string
	// Probs is the class distribution, sorted by class, when the server
	// returned scores; nil otherwise.
	Probs event.Probs
	// Boxes holds detections.
	Boxes []event.Box
}

// Confidence is the top probability (or top box score), 0 when unknown.
func (o Output) Confidence() float64 {
	best := 0.0
	for _, p := range o.Probs {
		best = max(best, p.Score)
	}
	for _, b := range o.Boxes {
		best = max(best, b.Score)
	}
	return best
}

// Extractor reads predictions from responses of KServe v1
// ({"predictions": [...]}) and Open Inference Protocol v2 ({"outputs": [...]})
// servers. It parses with fastjson and builds each distribution as sorted
// event.Probs directly (no map, no sort per response: see probsOrder): it
// runs on every routed request, where encoding/json's reflection cost as
// much as the proxying. Its zero value is ready to use; it must not be
// copied after first use.
type Extractor struct {
	// Classes names the columns of probability arrays; without it columns
	// are named "0", "1", ….
	Classes []string
	// OutputName picks the v2 output; empty takes the first numeric one.
	OutputName string

	names names
	order atomic.Pointer[probsOrder]
}

// parsers serve Extract and ImageURIs; a parser's values live until its next
// parse, so every string kept is copied (or interned) first.
var parsers fastjson.ParserPool

// names interns class names: the same dozen names come back in every
// response, and sharing them saves an allocation per class per request (and
// lets probsOrder compare names by pointer). Lookups are lock-free; the
// bounded table is replaced on each addition.
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

// probsOrder remembers how the last distribution's classes, in the order the
// server wrote them, map to sorted order. A model server writes the same
// classes in the same order response after response, so the extractor checks
// that (a comparison of interned names) instead of sorting again. It is
// immutable once published.
type probsOrder struct {
	wire []string // the classes as the server listed them
	perm []int    // perm[k]: wire index of the k-th class in sorted order (the last of repeats)
}

// matches reports whether read lists exactly the classes of o.wire, in order.
func (o *probsOrder) matches(read []event.ClassScore) bool {
	if len(read) != len(o.wire) {
		return false
	}
	for i, e := range read {
		if e.Class != o.wire[i] {
			return false
		}
	}
	return true
}

// learnOrder returns the order of read's classes: a stable sort by class,
// then the last of each run of repeats, so a class given twice keeps the
// value given last, as decoding into a map did.
func learnOrder(read []event.ClassScore) *probsOrder {
	o := &probsOrder{wire: make([]string, len(read))}
	idx := make([]int, len(read))
	for i, e := range read {
		o.wire[i], idx[i] = e.Class, i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(read[a].Class, read[b].Class) })
	o.perm = idx[:0]
	for k, i := range idx {
		if k+1 < len(idx) && read[idx[k+1]].Class == read[i].Class {
			continue
		}
		o.perm = append(o.perm, i)
	}
	return o
}

// sorted returns the scores read (in wire order) as a new event.Probs sorted
// by class; nil when read is empty.
func (x *Extractor) sorted(read []event.ClassScore) event.Probs {
	if len(read) == 0 {
		return nil
	}
	o := x.order.Load()
	if o == nil || !o.matches(read) {
		o = learnOrder(read)
		x.order.Store(o)
	}
	out := make(event.Probs, len(o.perm))
	for k, i := range o.perm {
		out[k] = read[i]
	}
	return out
}

// scratchScores is how many wire-order scores fit on the stack.
const scratchScores = 32

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
		probs, bad := x.row(v.GetArray())
		if bad >= 0 {
			return Output{}, fmt.Errorf("prediction array: [%d] is not a number", bad)
		}
		return Output{Class: argmax(probs), Probs: probs}, nil
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

var errProbsShape = errors.New("probs is neither an object nor an array of numbers")

// probs reads an object of class → probability or an array of probabilities.
func (x *Extractor) probs(p *fastjson.Value) (event.Probs, error) {
	if p.Type() == fastjson.TypeArray {
		probs, bad := x.row(p.GetArray())
		if bad >= 0 {
			return nil, errProbsShape
		}
		return probs, nil
	}
	obj, err := p.Object()
	if err != nil {
		return nil, errProbsShape
	}
	var buf [scratchScores]event.ClassScore
	read := buf[:0]
	ok := true
	obj.Visit(func(k []byte, v *fastjson.Value) {
		f, ferr := v.Float64()
		ok = ok && ferr == nil
		read = append(read, event.ClassScore{Class: x.names.intern(k), Score: f})
	})
	if !ok {
		return nil, errProbsShape
	}
	return x.sorted(read), nil
}

// row reads one row of probabilities, its columns named by Classes (or
// "0", "1", …). bad is the index of the first item that is not a number, -1
// when all are.
func (x *Extractor) row(items []*fastjson.Value) (probs event.Probs, bad int) {
	var buf [scratchScores]event.ClassScore
	read := buf[:0]
	cols := x.columns(len(items))
	for i, it := range items {
		f, err := it.Float64()
		if err != nil {
			return nil, i
		}
		read = append(read, event.ClassScore{Class: cols[i], Score: f})
	}
	return x.sorted(read), -1
}

// columns returns the names of n columns: Classes when it has n names,
// else "0" … "n-1".
func (x *Extractor) columns(n int) []string {
	if len(x.Classes) == n {
		return x.Classes
	}
	if t := numberNames.Load(); t != nil && len(*t) >= n {
		return (*t)[:n]
	}
	t := make([]string, n)
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	if n <= maxNames {
		numberNames.Store(&t)
	}
	return t
}

// numberNames caches "0", "1", … for probability arrays without class names.
var numberNames atomic.Pointer[[]string]

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
			if !fourNumbers(xy, &b.XYXY) {
				return nil, fmt.Errorf("boxes[%d].xyxy is not 4 numbers", i)
			}
		}
	}
	return out, nil
}

// fourNumbers reads an array of exactly four numbers into dst.
func fourNumbers(v *fastjson.Value, dst *[4]float64) bool {
	items, err := v.Array()
	if err != nil || len(items) != 4 {
		return false
	}
	for i, it := range items {
		if dst[i], err = it.Float64(); err != nil {
			return false
		}
	}
	return true
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
	for i, d := range data {
		if d.Type() != fastjson.TypeNumber {
			return nil, fmt.Errorf("output %s: data[%d] is not a number", name, i)
		}
	}
	rows, cols := 1, len(data)
	if len(shape) == 2 {
		rows, cols = shape[0].GetInt(), shape[1].GetInt()
	}
	if rows*cols != len(data) || cols == 0 {
		return nil, fmt.Errorf("output %s: shape %v does not match %d values", name, shape, len(data))
	}
	out := make([]Output, rows)
	for r := range rows {
		probs, bad := x.row(data[r*cols : (r+1)*cols])
		if bad >= 0 {
			return nil, fmt.Errorf("output %s: data[%d] is not a number", name, r*cols+bad)
		}
		out[r] = Output{Class: argmax(probs), Probs: probs}
	}
	return out, nil
}

// argmax returns the most probable class of probs (sorted by class), the
// first in class order among equals; "" for none.
func argmax(probs event.Probs) string {
	best, bestP := "", math.Inf(-1)
	for _, e := range probs {
		if e.Score > bestP {
			best, bestP = e.Class, e.Score
		}
	}
	return best
}

// ImageURIs returns, per instance of a request body, the value of field:
// KServe v1 {"instances": [{field: …}]}, v2 {"inputs": [{"name": field,
// "data": [...]}]}, or a single top-level field. Missing values are "".
func ImageURIs(body []byte, field string) []string {
	buf, ends, found := appendImageURIs(nil, nil, body, field)
	if !found {
		return nil
	}
	s, out, start := string(buf), make([]string, len(ends)), 0
	for i, e := range ends {
		out[i], start = s[start:e], e
	}
	return out
}

// appendImageURIs is ImageURIs without a string per value: it appends the
// values to dst and the end offset of each to ends. found is false when the
// body has no such field at all.
func appendImageURIs(dst []byte, ends []int, body []byte, field string) (_ []byte, _ []int, found bool) {
	if field == "" {
		return dst, ends, false
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return dst, ends, false
	}
	top, err := v.Object()
	if err != nil {
		return dst, ends, false
	}
	// Instances that are not objects (tensors) carry no field: ignore them.
	if inst := top.Get("instances"); allObjects(inst) {
		for _, it := range inst.GetArray() {
			dst = appendStr(dst, it.Get(field))
			ends = append(ends, len(dst))
		}
		return dst, ends, true
	}
	if inputs := top.Get("inputs"); allObjects(inputs) {
		for _, in := range inputs.GetArray() {
			if string(in.GetStringBytes("name")) != field {
				continue
			}
			for _, d := range in.GetArray("data") {
				dst = appendStr(dst, d)
				ends = append(ends, len(dst))
			}
			return dst, ends, true
		}
	}
	if f := top.Get(field); f != nil {
		dst = appendStr(dst, f)
		return dst, append(ends, len(dst)), true
	}
	return dst, ends, false
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

// appendStr appends v's string value; nothing when v is absent or not a string.
func appendStr(dst []byte, v *fastjson.Value) []byte {
	if v == nil || v.Type() != fastjson.TypeString {
		return dst
	}
	return append(dst, v.GetStringBytes()...)
}
