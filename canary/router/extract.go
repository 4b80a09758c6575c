package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

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
// servers.
type Extractor struct {
	// Classes names the columns of probability arrays; without it columns
	// are named "0", "1", ….
	Classes []string
	// OutputName picks the v2 output; empty takes the first numeric one.
	OutputName string
}

var errNoPredictions = errors.New("response has neither predictions nor outputs")

// Extract returns the predictions in body, in request order.
func (x Extractor) Extract(body []byte) ([]Output, error) {
	var resp struct {
		Predictions []json.RawMessage `json:"predictions"`
		Outputs     []v2Tensor        `json:"outputs"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	switch {
	case resp.Predictions != nil:
		out := make([]Output, 0, len(resp.Predictions))
		for i, raw := range resp.Predictions {
			o, err := x.v1Item(raw)
			if err != nil {
				return nil, fmt.Errorf("predictions[%d]: %w", i, err)
			}
			out = append(out, o)
		}
		return out, nil
	case resp.Outputs != nil:
		return x.v2(resp.Outputs)
	}
	return nil, errNoPredictions
}

func (x Extractor) v1Item(raw json.RawMessage) (Output, error) {
	// Dispatch on the first byte rather than trying each shape in turn.
	switch first(raw) {
	case '[':
		var nums []float64
		if err := json.Unmarshal(raw, &nums); err != nil {
			return Output{}, fmt.Errorf("prediction array: %w", err)
		}
		return x.fromRow(nums), nil
	case '"':
		var label string
		err := json.Unmarshal(raw, &label)
		return Output{Class: label}, err
	case '{':
	default:
		return Output{}, errors.New("unsupported prediction shape")
	}
	var nums []float64
	var obj struct {
		Probs         json.RawMessage `json:"probs"`
		Probabilities json.RawMessage `json:"probabilities"`
		Class         string          `json:"predicted_class"`
		Label         string          `json:"label"`
		Boxes         []event.Box     `json:"boxes"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Output{}, fmt.Errorf("unsupported prediction shape: %w", err)
	}
	o := Output{Class: obj.Class, Boxes: obj.Boxes}
	if o.Class == "" {
		o.Class = obj.Label
	}
	p := obj.Probs
	if p == nil {
		p = obj.Probabilities
	}
	if p != nil {
		var m map[string]float64
		if json.Unmarshal(p, &m) == nil {
			o.Probs = m
		} else if json.Unmarshal(p, &nums) == nil {
			o.Probs = x.fromRow(nums).Probs
		} else {
			return Output{}, errors.New("probs is neither an object nor an array of numbers")
		}
	}
	if o.Class == "" {
		o.Class = argmax(o.Probs)
	}
	return o, nil
}

// v2Tensor is one Open Inference Protocol v2 output tensor.
type v2Tensor struct {
	Name     string            `json:"name"`
	Shape    []int             `json:"shape"`
	Datatype string            `json:"datatype"`
	Data     []json.RawMessage `json:"data"`
}

func (x Extractor) v2(outputs []v2Tensor) ([]Output, error) {
	for _, t := range outputs {
		if x.OutputName != "" && t.Name != x.OutputName {
			continue
		}
		if t.Datatype == "BYTES" {
			if x.OutputName == "" {
				continue
			}
			out := make([]Output, len(t.Data))
			for i, d := range t.Data {
				if err := json.Unmarshal(d, &out[i].Class); err != nil {
					return nil, fmt.Errorf("output %s: %w", t.Name, err)
				}
			}
			return out, nil
		}
		return x.v2Numeric(t)
	}
	return nil, fmt.Errorf("no usable v2 output (output_name %q)", x.OutputName)
}

func (x Extractor) v2Numeric(t v2Tensor) ([]Output, error) {
	flat := make([]float64, len(t.Data))
	for i, d := range t.Data {
		if err := json.Unmarshal(d, &flat[i]); err != nil {
			return nil, fmt.Errorf("output %s: data[%d] is not a number", t.Name, i)
		}
	}
	rows, cols := 1, len(flat)
	if len(t.Shape) == 2 {
		rows, cols = t.Shape[0], t.Shape[1]
	}
	if rows*cols != len(flat) || cols == 0 {
		return nil, fmt.Errorf("output %s: shape %v does not match %d values", t.Name, t.Shape, len(flat))
	}
	out := make([]Output, rows)
	for r := range rows {
		out[r] = x.fromRow(flat[r*cols : (r+1)*cols])
	}
	return out, nil
}

func (x Extractor) fromRow(row []float64) Output {
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
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	var req struct {
		Instances []map[string]json.RawMessage
		Inputs    []v2Tensor
	}
	// Instances that are not objects (tensors) carry no field: ignore them.
	if json.Unmarshal(top["instances"], &req.Instances) != nil {
		req.Instances = nil
	}
	if json.Unmarshal(top["inputs"], &req.Inputs) != nil {
		req.Inputs = nil
	}
	str := func(raw json.RawMessage) string {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	switch {
	case len(req.Instances) > 0:
		out := make([]string, len(req.Instances))
		for i, inst := range req.Instances {
			out[i] = str(inst[field])
		}
		return out
	case len(req.Inputs) > 0:
		for _, in := range req.Inputs {
			if in.Name == field {
				out := make([]string, len(in.Data))
				for i, d := range in.Data {
					out[i] = str(d)
				}
				return out
			}
		}
	}
	if v, ok := top[field]; ok {
		return []string{str(v)}
	}
	return nil
}

// first returns the first non-space byte of raw.
func first(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
