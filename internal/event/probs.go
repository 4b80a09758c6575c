package event

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Probs is a full softmax: one score per class, sorted by Class ascending,
// no class twice. A sorted slice instead of a map lets ingest read classes
// and values in storage order without a lookup per class, and costs one
// allocation per event instead of a hash table. On the wire it is still an
// object {"class": p, ...}, keys in class order as encoding/json writes maps.
type Probs []ClassScore

// ProbsOf returns the distribution m as Probs, sorted by class. It suits
// code that builds distributions as maps; nil or empty m gives nil.
func ProbsOf(m map[string]float64) Probs {
	if len(m) == 0 {
		return nil
	}
	p := make(Probs, 0, len(m))
	for c, v := range m {
		p = append(p, ClassScore{Class: c, Score: v})
	}
	slices.SortFunc(p, func(a, b ClassScore) int { return strings.Compare(a.Class, b.Class) })
	return p
}

// Get returns the probability of class and whether p has an entry for it.
func (p Probs) Get(class string) (float64, bool) {
	i, ok := slices.BinarySearchFunc(p, class, func(e ClassScore, c string) int { return strings.Compare(e.Class, c) })
	if !ok {
		return 0, false
	}
	return p[i].Score, true
}

// Map returns p as a class → probability map, for code that wants lookups
// by name more than order.
func (p Probs) Map() map[string]float64 {
	m := make(map[string]float64, len(p))
	for _, e := range p {
		m[e.Class] = e.Score
	}
	return m
}

// MarshalJSON writes p as an object in class order, byte for byte what
// encoding/json writes for the equivalent map[string]float64.
func (p Probs) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	dst := make([]byte, 0, 2+len(p)*24)
	dst = append(dst, '{')
	for i, e := range p {
		if i > 0 {
			dst = append(dst, ',')
		}
		k, err := json.Marshal(e.Class)
		if err != nil {
			return nil, err
		}
		dst = append(append(dst, k...), ':')
		if dst, err = appendJSONFloat(dst, e.Score); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// UnmarshalJSON reads an object of class → probability. A class given twice
// keeps its last value, as decoding into a map did.
func (p *Probs) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*p = ProbsOf(m)
	if *p == nil {
		*p = Probs{} // {} stays an empty, non-nil distribution
	}
	return nil
}

// appendJSONFloat formats f as encoding/json does: shortest representation,
// exponent form below 1e-6 or from 1e21, without a leading exponent zero.
func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// sortProbs sorts p by class in place and drops repeated classes, keeping
// the value given last. Insertion sort: distributions are short and usually
// arrive already sorted (encoding/json sorts map keys), which makes it one
// comparison per class. It is stable, so among equal classes the last read
// stays last. Wide distributions take a stable O(n log n) sort instead, so a
// hostile event cannot make the decoder quadratic.
func sortProbs(p Probs) Probs {
	if len(p) > 32 {
		slices.SortStableFunc(p, func(a, b ClassScore) int { return strings.Compare(a.Class, b.Class) })
	}
	for i := 1; i < len(p); i++ {
		e := p[i]
		j := i
		for j > 0 && p[j-1].Class > e.Class {
			p[j] = p[j-1]
			j--
		}
		p[j] = e
	}
	out := p[:0]
	for i, e := range p {
		if i+1 < len(p) && p[i+1].Class == e.Class {
			continue // a later value for the same class wins
		}
		out = append(out, e)
	}
	return out
}
