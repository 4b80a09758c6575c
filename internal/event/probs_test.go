package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// mapPrediction is Prediction as it was with a map for probs: the wire
// format Probs must keep byte for byte.
type mapPrediction struct {
	SchemaVersion  int                `json:"schema_version,omitempty"`
	EventID        string             `json:"event_id"`
	TS             time.Time          `json:"ts"`
	Model          string             `json:"model"`
	ModelVersion   string             `json:"model_version"`
	Source         string             `json:"source"`
	Task           string             `json:"task"`
	ImageURI       string             `json:"image_uri"`
	PredictedClass string             `json:"predicted_class,omitempty"`
	Probs          map[string]float64 `json:"probs,omitempty"`
	TopK           []ClassScore       `json:"top_k,omitempty"`
	Boxes          []Box              `json:"boxes,omitempty"`
	LatencyMS      *float64           `json:"latency_ms,omitempty"`
	Arm            string             `json:"arm,omitempty"`
	RolloutID      string             `json:"rollout_id,omitempty"`
}

func TestEncodeMatchesMapEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"ok", "dent", "a<b>&c", "défaut", "x\"y", "z\u2028", "", "A", "a", "傷", "aa"}
	floats := []float64{0, -0.0, 1, 0.5, 1e-7, 1.5e-9, 1e21, 123456789, 0.1, 1e-6, 3.14159e-300, 0.999999999}
	for trial := range 2000 {
		m := map[string]float64{}
		for range rng.IntN(14) {
			v := floats[rng.IntN(len(floats))]
			if rng.IntN(2) == 0 {
				v = rng.Float64()
			}
			m[names[rng.IntN(len(names))]+fmt.Sprint(rng.IntN(3))] = v
		}
		old := mapPrediction{SchemaVersion: 1, EventID: "e", TS: time.Unix(1700000000, 123e6).UTC(),
			Model: "m", Task: TaskClassification, Probs: m}
		want, err := json.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		got, err := (Prediction{SchemaVersion: 1, EventID: "e", TS: old.TS, Model: "m",
			Task: TaskClassification, Probs: ProbsOf(m)}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d:\n got %s\nwant %s", trial, got, want)
		}
		var back Prediction
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back.Probs, ProbsOf(m)) {
			t.Fatalf("trial %d: json round trip gave %v, want %v", trial, back.Probs, ProbsOf(m))
		}
		if len(m) > 0 { // the fast decoder reads the same bytes to the same slice
			// fastjson may round tiny exponents by an ulp, so compare loosely.
			if p, err := parsePrediction(got, nil); err != nil || !slices.EqualFunc(p.Probs, ProbsOf(m), closeScore) {
				t.Fatalf("trial %d: parse gave %v, %v; want %v", trial, p.Probs, err, ProbsOf(m))
			}
		}
	}
	if _, err := json.Marshal(Probs{{"a", 1}, {"b", 0}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{json2NaN(), 1 / zero()} {
		if _, err := (Prediction{Probs: Probs{{"a", bad}}}).Encode(); err == nil {
			t.Errorf("encoding probability %v: no error, want one as for a map", bad)
		}
	}
}

func closeScore(a, b ClassScore) bool {
	return a.Class == b.Class && math.Abs(a.Score-b.Score) <= 1e-15*math.Abs(b.Score)
}

func zero() float64     { return 0 }
func json2NaN() float64 { z := zero(); return z / z }

// Duplicate keys keep the last value, as a map did, in both decoders; the
// result is sorted whatever the key order on the wire.
func TestProbsDecodeSortsAndDedupes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Probs
	}{
		{`{"c":0.2,"a":0.3,"b":0.5}`, Probs{{"a", 0.3}, {"b", 0.5}, {"c", 0.2}}},
		{`{"a":0.9,"b":0.5,"a":0.5}`, Probs{{"a", 0.5}, {"b", 0.5}}},
		{`{"b":0.1,"a":0.1,"b":0.2,"a":0.8,"b":0.9}`, Probs{{"a", 0.8}, {"b", 0.9}}},
		{`{}`, Probs{}},
	} {
		var viaJSON Probs
		if err := json.Unmarshal([]byte(tc.in), &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(viaJSON, tc.want) {
			t.Errorf("json.Unmarshal(%s) = %v, want %v", tc.in, viaJSON, tc.want)
		}
		for _, st := range []*decodeState{nil, {intern: interner{}}} {
			p, err := parsePrediction([]byte(`{"probs":`+tc.in+`}`), st)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Probs, tc.want) {
				t.Errorf("parse(%s) = %v, want %v", tc.in, p.Probs, tc.want)
			}
		}
	}
	// Wide distributions take the other sort; reversed input is its worst case.
	var b bytes.Buffer
	b.WriteString(`{"probs":{`)
	for i := 99; i >= 0; i-- {
		fmt.Fprintf(&b, `"c%03d":0.01,`, i)
	}
	b.WriteString(`"c050":0.5}}`)
	p, err := parsePrediction(b.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Probs) != 100 || !slices.IsSortedFunc(p.Probs, func(a, b ClassScore) int { return cmpClass(a, b) }) {
		t.Fatalf("wide probs: %d entries, sorted %v", len(p.Probs), p.Probs)
	}
	if v, _ := p.Probs.Get("c050"); v != 0.5 {
		t.Errorf("wide probs: c050 = %v, want the last value 0.5", v)
	}
}

func cmpClass(a, b ClassScore) int {
	switch {
	case a.Class < b.Class:
		return -1
	case a.Class > b.Class:
		return 1
	}
	return 0
}

func TestProbsGetAndMap(t *testing.T) {
	p := ProbsOf(map[string]float64{"dent": 0.2, "ok": 0.7, "scratch": 0.1})
	for c, want := range map[string]float64{"dent": 0.2, "ok": 0.7, "scratch": 0.1} {
		if v, ok := p.Get(c); !ok || v != want {
			t.Errorf("Get(%q) = %v, %v; want %v", c, v, ok, want)
		}
	}
	for _, c := range []string{"", "a", "okay", "z"} {
		if _, ok := p.Get(c); ok {
			t.Errorf("Get(%q) found an entry", c)
		}
	}
	if m := p.Map(); len(m) != 3 || m["ok"] != 0.7 {
		t.Errorf("Map() = %v", m)
	}
	if ProbsOf(nil) != nil {
		t.Error("ProbsOf(nil) is not nil")
	}
}

// One decoder reuses the previous event's key order when it repeats; any
// sequence of orders, repeats included, must still decode as a map would.
func TestProbsOrderReuse(t *testing.T) {
	st := &decodeState{intern: interner{}}
	rng := rand.New(rand.NewPCG(5, 6))
	orders := [][]string{
		{"good", "scratch", "dent", "crack"},
		{"crack", "dent", "good", "scratch"},
		{"good", "scratch", "dent", "crack", "dent"},
		{"good", "scratch", "dent"},
		{"x", "scratch", "dent", "crack"},
	}
	for trial := range 3000 {
		order := orders[rng.IntN(len(orders))]
		if trial%3 != 0 { // mostly repeat the previous order, as producers do
			order = orders[trial%2]
		}
		var b bytes.Buffer
		b.WriteString(`{"probs":{`)
		m := map[string]float64{}
		for i, c := range order {
			v := float64(rng.IntN(100)) / 100
			m[c] = v
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%v", c, v)
		}
		b.WriteString(`}}`)
		p, err := parsePrediction(b.Bytes(), st)
		if err != nil {
			t.Fatal(err)
		}
		if want := ProbsOf(m); !slices.Equal(p.Probs, want) {
			t.Fatalf("trial %d: %s decoded to %v, want %v", trial, b.Bytes(), p.Probs, want)
		}
	}
}

// Probs built by hand must keep the order decoders produce.
func TestValidateRefusesUnsortedProbs(t *testing.T) {
	p, err := DecodePrediction([]byte(validClassification))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Probs{{{"b", 0.5}, {"a", 0.5}}, {{"a", 0.5}, {"a", 0.5}}} {
		q := p
		q.Probs, q.PredictedClass = bad, "a"
		if err := q.Validate(); ReasonOf(err) != ReasonBadProbabilities {
			t.Errorf("Validate(%v) = %v, want %s", bad, err, ReasonBadProbabilities)
		}
	}
}
