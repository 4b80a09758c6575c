package event

import (
	"strconv"
	"time"
)

// Predictions arrive at 100k/s and more; encoding/json's reflection costs
// ~10 µs an event, so the hot path reads them with a single-pass scanner
// (scan.go) that fills the struct as it goes. Labels, far rarer, keep
// encoding/json.

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
	// The scanner's buffers for unescaped keys and strings, kept between events.
	keyBuf, valBuf []byte
	recent         [256]string // the names last interned, by a hash of a few bytes
}

// str returns b as a string, interned when st has an interner. The recent
// table answers most calls with one comparison: an event repeats the names
// of the one before, and a map lookup per name cost a fifth of the decode.
func (st *decodeState) str(b []byte) string {
	if st == nil {
		return string(b)
	}
	if len(b) == 0 {
		return ""
	}
	slot := &st.recent[(uint(len(b))*131+uint(b[0])*31+uint(b[len(b)/2])*7+uint(b[len(b)-1]))%uint(len(st.recent))]
	if *slot == string(b) {
		return *slot
	}
	*slot = st.intern.str(b)
	return *slot
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

func parsePrediction(data []byte, st *decodeState) (Prediction, error) {
	if len(data) > MaxEventBytes {
		return Prediction{}, invalid(ReasonTooLarge, "event is %d bytes, limit %d", len(data), MaxEventBytes)
	}
	s := scanner{data: data}
	if st != nil {
		s.keyBuf, s.valBuf = st.keyBuf, st.valBuf
		defer func() { st.keyBuf, st.valBuf = s.keyBuf, s.valBuf }()
	}
	if s.peek() != '{' {
		kind := s.kind()
		if err := s.skip(0); err != nil {
			return Prediction{}, err
		}
		if err := s.end(); err != nil {
			return Prediction{}, err
		}
		return Prediction{}, invalid(ReasonWrongType, "event must be a JSON object, got %s", kind)
	}
	var p Prediction
	err := s.object(func(key []byte) error {
		if s.failed() || s.null() {
			return s.skip(0) // null reads as absent
		}
		return p.setField(key, &s, st)
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return Prediction{}, err
	}
	return p, s.refused
}

// setField reads the value of one top-level key into p. The switch on
// string(key) converts without allocating.
func (p *Prediction) setField(key []byte, s *scanner, st *decodeState) error {
	switch string(key) {
	case "schema_version":
		return s.integer("schema_version", &p.SchemaVersion)
	case "event_id":
		return s.text("event_id", &p.EventID, nil)
	case "ts":
		return s.time("ts", &p.TS)
	case "model":
		return s.text("model", &p.Model, st)
	case "model_version":
		return s.text("model_version", &p.ModelVersion, st)
	case "source":
		return s.text("source", &p.Source, st)
	case "task":
		return s.text("task", &p.Task, st)
	case "image_uri":
		return s.text("image_uri", &p.ImageURI, nil)
	case "predicted_class":
		return s.text("predicted_class", &p.PredictedClass, st)
	case "arm":
		return s.text("arm", &p.Arm, st)
	case "rollout_id":
		return s.text("rollout_id", &p.RolloutID, st)
	case "latency_ms":
		f := new(float64)
		p.LatencyMS = f
		return s.float("latency_ms", f)
	case "probs":
		return s.probs(&p.Probs, st)
	case "top_k":
		return s.topK(&p.TopK)
	case "boxes":
		return s.boxes(&p.Boxes)
	}
	return s.skip(0)
}

// text reads a string into dst, interned through st when st is not nil
// (for names that repeat from event to event).
func (s *scanner) text(field string, dst *string, st *decodeState) error {
	if s.peek() != '"' {
		return s.wrongType(field, "string")
	}
	b, err := s.str(&s.valBuf)
	if err != nil {
		return err
	}
	if st != nil {
		*dst = st.str(b)
	} else {
		*dst = string(b)
	}
	return nil
}

func (s *scanner) float(field string, dst *float64) error {
	if c := s.peek(); c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' {
		return s.wrongType(field, "number")
	}
	v, _, err := s.number()
	*dst = v
	return err
}

func (s *scanner) integer(field string, dst *int) error {
	if c := s.peek(); c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' {
		return s.wrongType(field, "integer")
	}
	_, text, err := s.number()
	if err != nil {
		return err
	}
	n, perr := strconv.Atoi(string(text))
	if perr != nil {
		s.refuse(invalid(ReasonWrongType, "field %q: got %s, want an integer", field, truncate(string(text))))
	}
	*dst = n
	return nil
}

func (s *scanner) time(field string, dst *time.Time) error {
	if s.peek() != '"' {
		return s.wrongType(field, "RFC 3339 string")
	}
	b, err := s.str(&s.valBuf)
	if err != nil {
		return err
	}
	t, perr := time.Parse(time.RFC3339Nano, string(b))
	if perr != nil {
		s.refuse(invalid(ReasonBadTimestamp, "ts is not RFC 3339: %q", truncate(string(b))))
	}
	*dst = t
	return nil
}

// missing reports a nested field that is absent.
func missing(field string) error {
	return invalid(ReasonMissingField, "%s is required", field)
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

// probs reads the object of class → probability into dst, sorted by class.
func (s *scanner) probs(dst *Probs, st *decodeState) error {
	if s.peek() != '{' {
		return s.wrongType("probs", "object of class → probability")
	}
	var read Probs
	if st != nil {
		read = st.read[:0]
	}
	// A producer lists the same classes in the same order event after
	// event: expecting the previous event's next key skips reading and
	// interning it.
	var expect func(i int) string
	if st != nil && st.order.plain {
		expect = func(i int) string {
			if i < len(st.order.wire) {
				return st.order.wire[i]
			}
			return ""
		}
	}
	err := s.objectExpecting(expect, func(key []byte, known string) error {
		if s.failed() {
			return s.skip(0)
		}
		if len(read) == maxClasses {
			s.refuse(invalid(ReasonBadProbabilities, "more than %d classes", maxClasses))
			return s.skip(0)
		}
		class := known
		if key != nil {
			class = st.str(key) // before the value: the key's bytes are only valid until then
		}
		var v float64
		if err := s.float("probs", &v); err != nil {
			return err
		}
		read = append(read, ClassScore{Class: class, Score: v})
		return nil
	})
	if err != nil || s.failed() {
		return err
	}
	if st == nil {
		*dst = sortProbs(read)
		return nil
	}
	st.read = read
	if !st.order.matches(read) {
		st.order.learn(read)
	}
	probs := st.probsBuf(len(st.order.perm))
	for _, i := range st.order.perm {
		probs = append(probs, read[i])
	}
	*dst = probs
	return nil
}

// probsOrder remembers how the previous event's classes, in the order its
// producer wrote them, map to sorted order. A producer writes the same
// classes in the same order event after event, so the decoder checks that
// (a pointer comparison per interned name) instead of sorting again.
type probsOrder struct {
	wire []string // the classes as the last learned event listed them
	perm []int    // perm[k]: wire index of the k-th class in sorted order (the last one of repeats)
	// plain: no class in wire needs escaping in JSON, so a key equals one
	// byte for byte exactly when it is written without escapes.
	plain bool
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
	o.plain = true
	idx := make(Probs, len(read)) // Score carries the wire index through the sort
	for i, e := range read {
		o.wire = append(o.wire, e.Class)
		o.plain = o.plain && !needsEscape(e.Class)
		idx[i] = ClassScore{Class: e.Class, Score: float64(i)}
	}
	idx = sortProbs(idx)
	o.perm = o.perm[:0]
	for _, e := range idx {
		o.perm = append(o.perm, int(e.Score))
	}
}

// needsEscape reports whether JSON must escape some byte of name.
func needsEscape(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// objects reads an array of objects, at most limit of them, calling elem
// with each one's index and the cursor on it.
func (s *scanner) objects(field string, limit int, tooMany func() error, elem func(i int) error) error {
	if s.peek() != '[' {
		return s.wrongType(field, "array")
	}
	return s.array(func(i int) error {
		switch {
		case s.failed():
			return s.skip(0)
		case i == limit:
			s.refuse(tooMany())
			return s.skip(0)
		case s.peek() != '{':
			return s.wrongType(field, "object")
		}
		return elem(i)
	})
}

func (s *scanner) topK(dst *[]ClassScore) error {
	tooMany := func() error { return invalid(ReasonBadProbabilities, "more than %d top_k entries", maxClasses) }
	return s.objects("top_k", maxClasses, tooMany, func(int) error {
		var cs ClassScore
		var seen [2]bool
		err := s.object(func(key []byte) error {
			switch {
			case s.failed():
			case string(key) == "class":
				seen[0] = true
				return s.text("top_k.class", &cs.Class, nil)
			case string(key) == "score":
				seen[1] = true
				return s.float("top_k.score", &cs.Score)
			}
			return s.skip(0)
		})
		s.requireAll(seen[:], "top_k.class", "top_k.score")
		*dst = append(*dst, cs)
		return err
	})
}

// requireAll refuses the first of fields whose seen flag is false.
func (s *scanner) requireAll(seen []bool, fields ...string) {
	for i, ok := range seen {
		if !ok {
			s.refuse(missing(fields[i]))
			return
		}
	}
}

func (s *scanner) boxes(dst *[]Box) error {
	tooMany := func() error { return invalid(ReasonBadBoxes, "more than %d boxes", maxBoxes) }
	return s.objects("boxes", maxBoxes, tooMany, func(i int) error {
		b, err := s.box(i)
		*dst = append(*dst, b)
		return err
	})
}

func (s *scanner) box(i int) (Box, error) {
	var b Box
	var seen [3]bool
	err := s.object(func(key []byte) error {
		switch {
		case s.failed():
		case string(key) == "class":
			seen[0] = true
			return s.text("boxes.class", &b.Class, nil)
		case string(key) == "score":
			seen[1] = true
			return s.float("boxes.score", &b.Score)
		case string(key) == "xyxy":
			seen[2] = true
			return s.xyxy(i, &b.XYXY)
		}
		return s.skip(0)
	})
	s.requireAll(seen[:2], "boxes.class", "boxes.score")
	if !seen[2] {
		s.refuse(invalid(ReasonBadBoxes, "box %d: xyxy needs exactly 4 numbers", i))
	}
	return b, err
}

func (s *scanner) xyxy(i int, dst *[4]float64) error {
	bad := invalid(ReasonBadBoxes, "box %d: xyxy needs exactly 4 numbers", i)
	if s.peek() != '[' {
		s.refuse(bad)
		return s.skip(0)
	}
	n := 0
	err := s.array(func(j int) error {
		n++
		if j >= 4 || s.failed() {
			return s.skip(0)
		}
		return s.float("boxes.xyxy", &dst[j])
	})
	if n != 4 {
		s.refuse(bad)
	}
	return err
}
