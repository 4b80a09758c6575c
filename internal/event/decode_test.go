package event

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const validClassification = `{"schema_version":1,"event_id":"e-1","ts":"2026-11-23T10:00:00.123Z",
 "model":"m","model_version":"v1","source":"cam-1","task":"classification",
 "image_uri":"file:///data/a.jpg","predicted_class":"scratch",
 "probs":{"scratch":0.7,"good":0.2,"dent":0.1},"latency_ms":12.5,"arm":"stable"}`

func TestDecodePredictionValid(t *testing.T) {
	p, err := DecodePrediction([]byte(validClassification))
	if err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	if p.EventID != "e-1" || p.Source != "cam-1" || p.TS.UnixMilli()%1000 != 123 {
		t.Fatalf("decoded wrong: %+v", p)
	}
	s := p.Scores()
	if s.TopClass != "scratch" || math.Abs(s.Confidence-0.7) > 1e-12 || math.Abs(s.Margin-0.5) > 1e-12 {
		t.Fatalf("scores = %+v", s)
	}
	want := -(0.7*math.Log(0.7) + 0.2*math.Log(0.2) + 0.1*math.Log(0.1))
	if math.Abs(s.Entropy-want) > 1e-12 {
		t.Fatalf("entropy = %v, want %v", s.Entropy, want)
	}
}

func TestDecodePredictionDerivesPredictedClass(t *testing.T) {
	ev := strings.Replace(validClassification, `"predicted_class":"scratch",`, "", 1)
	p, err := DecodePrediction([]byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	if p.PredictedClass != "scratch" {
		t.Fatalf("predicted_class = %q, want the argmax", p.PredictedClass)
	}
}

func TestDecodeDetection(t *testing.T) {
	ev := `{"event_id":"d1","ts":"2026-11-23T10:00:00Z","model":"yolo","model_version":"8","source":"line-2",
	 "task":"detection","image_uri":"https://cams.example/a.jpg",
	 "boxes":[{"class":"crack","score":0.4,"xyxy":[1,2,30,40]},{"class":"dent","score":0.9,"xyxy":[5,5,6,6]}]}`
	p, err := DecodePrediction([]byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	if p.PredictedClass != "dent" || p.Scores().Confidence != 0.9 || p.SchemaVersion != 1 {
		t.Fatalf("got %+v", p)
	}
}

// mutate returns the valid event with one field replaced (or removed when v is nil).
func mutate(t *testing.T, field string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validClassification), &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodePredictionRefusals(t *testing.T) {
	cases := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"not json", []byte(`{"event_id": `), ReasonMalformedJSON},
		{"array", []byte(`[1,2]`), ReasonWrongType},
		{"trailing", []byte(validClassification + `{}`), ReasonMalformedJSON},
		{"NaN literal", []byte(strings.Replace(validClassification, "0.7", "NaN", 1)), ReasonBadProbabilities},
		{"too large", []byte(`{"event_id":"` + strings.Repeat("x", MaxEventBytes) + `"}`), ReasonTooLarge},
		{"missing id", mutate(t, "event_id", nil), ReasonMissingField},
		{"id wrong type", mutate(t, "event_id", 42), ReasonWrongType},
		{"id with newline", mutate(t, "event_id", "a\nb"), ReasonBadField},
		{"missing ts", mutate(t, "ts", nil), ReasonMissingField},
		{"ts not rfc3339", mutate(t, "ts", "yesterday"), ReasonBadTimestamp},
		{"ts year 1900", mutate(t, "ts", "1900-01-01T00:00:00Z"), ReasonBadTimestamp},
		{"missing model", mutate(t, "model", nil), ReasonMissingField},
		{"missing source", mutate(t, "source", ""), ReasonMissingField},
		{"bad task", mutate(t, "task", "segmentation"), ReasonBadTask},
		{"missing task", mutate(t, "task", nil), ReasonMissingField},
		{"bad uri scheme", mutate(t, "image_uri", "ftp://x/a.jpg"), ReasonBadImageURI},
		{"missing uri", mutate(t, "image_uri", nil), ReasonMissingField},
		{"probs do not sum", mutate(t, "probs", map[string]float64{"a": 0.5, "b": 0.2}), ReasonBadProbabilities},
		{"negative prob", mutate(t, "probs", map[string]float64{"scratch": 1.5, "b": -0.5}), ReasonBadProbabilities},
		{"probs wrong type", mutate(t, "probs", []float64{0.5, 0.5}), ReasonWrongType},
		{"predicted not in probs", mutate(t, "predicted_class", "hole"), ReasonBadProbabilities},
		{"no probs", mutate(t, "probs", nil), ReasonMissingField},
		{"negative latency", mutate(t, "latency_ms", -1), ReasonBadField},
		{"bad arm", mutate(t, "arm", "blue"), ReasonBadField},
		{"future schema", mutate(t, "schema_version", 99), ReasonSchemaVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodePrediction(c.data)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := ReasonOf(err); got != c.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, c.reason)
			}
		})
	}
}

func TestBoxesRefused(t *testing.T) {
	base := `{"event_id":"d","ts":"2026-11-23T10:00:00Z","model":"y","model_version":"1","source":"s","task":"detection","image_uri":"file:///a","boxes":%s}`
	for _, boxes := range []string{
		`[{"class":"","score":0.5,"xyxy":[0,0,1,1]}]`,
		`[{"class":"a","score":1.5,"xyxy":[0,0,1,1]}]`,
		`[{"class":"a","score":0.5,"xyxy":[5,0,1,1]}]`,
	} {
		_, err := DecodePrediction([]byte(strings.Replace(base, "%s", boxes, 1)))
		if ReasonOf(err) != ReasonBadBoxes {
			t.Errorf("%s: err = %v, want %s", boxes, err, ReasonBadBoxes)
		}
	}
}

func TestLabelRoundTrip(t *testing.T) {
	l := Label{EventID: "e-1", Label: "dent", Annotator: "ann", TS: time.Date(2026, 11, 23, 1, 2, 3, 456789, time.UTC)}
	b, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLabel(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != "e-1" || got.Label != "dent" || got.SchemaVersion != SchemaVersion || got.TS.Nanosecond() != 0 {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := DecodeLabel([]byte(`{"event_id":"e","ts":"2026-11-23T10:00:00Z","annotator":"a"}`)); ReasonOf(err) != ReasonMissingField {
		t.Fatalf("label without label or boxes: %v", err)
	}
}

func TestPredictionEncodeRoundTrip(t *testing.T) {
	p, err := DecodePrediction([]byte(validClassification))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodePrediction(b)
	if err != nil {
		t.Fatal(err)
	}
	if !q.TS.Equal(p.TS) || q.EventID != p.EventID || len(q.Probs) != 3 {
		t.Fatalf("round trip changed the event: %+v", q)
	}
}

func TestScoresTiesAndRunnerUp(t *testing.T) {
	for range 20 { // map order varies between runs of the loop
		s := (&Prediction{Probs: ProbsOf(map[string]float64{"b": 0.4, "a": 0.4, "c": 0.2})}).Scores()
		if s.TopClass != "a" || s.Margin != 0 {
			t.Fatalf("tie: %+v, want top a with margin 0", s)
		}
		s = (&Prediction{Probs: ProbsOf(map[string]float64{"x": 0.1, "y": 0.6, "z": 0.3})}).Scores()
		if s.TopClass != "y" || math.Abs(s.Margin-0.3) > 1e-12 {
			t.Fatalf("scores %+v, want y with margin 0.3", s)
		}
	}
}

// Found by FuzzDecodePrediction: a nested object without its required
// fields once dereferenced a nil value.
func TestNestedMissingFieldsAreRefusedNotPanics(t *testing.T) {
	for _, data := range []string{
		`{"boxes":[{}]}`,
		`{"top_k":[{}]}`,
		`{"boxes":[{"class":"a"}]}`,
		`{"top_k":[{"class":"a"}]}`,
	} {
		_, err := DecodePrediction([]byte(data))
		if ReasonOf(err) == "" {
			t.Errorf("%s: err = %v, want a refusal with a reason", data, err)
		}
	}
}

// Events decoded one after another by one Decoder share a slab for their
// probabilities: the next event never sees the classes of the one before.
func TestConsecutiveProbsDoNotShare(t *testing.T) {
	dec := &Decoder{Limits: DefaultLimits()}
	event := func(id, probs string) []byte {
		return fmt.Appendf(nil, `{"event_id":%q,"ts":%q,"model":"m","model_version":"v","source":"s",`+
			`"task":"classification","image_uri":"file:///x.jpg","probs":{%s}}`, id, time.Now().UTC().Format(time.RFC3339), probs)
	}
	var kept []Prediction
	for i := range 2000 { // enough to cross several slabs
		a, err := dec.Prediction(event("a", `"y":0.5,"x":0.5`))
		if err != nil {
			t.Fatal(err)
		}
		b, err := dec.Prediction(event("b", `"z":1`))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Probs) != 1 || b.Probs[0] != (ClassScore{"z", 1}) {
			t.Fatalf("round %d: probs %v, want only z", i, b.Probs)
		}
		kept = append(kept, a, b)
	}
	for i, p := range kept {
		want := Probs{{"x", 0.5}, {"y", 0.5}}
		if i%2 == 1 {
			want = Probs{{"z", 1}}
		}
		if !slices.Equal(p.Probs, want) {
			t.Fatalf("event %d: probs %v after later decodes, want %v", i, p.Probs, want)
		}
	}
}

func TestClassNamesRefused(t *testing.T) {
	for name, bad := range map[string]bool{
		"good": false, "missing_part": false, "défaut": false, "傷": false,
		"": true, "a,b": true, "a\x01": true, "a\x7f": true, "défaut,x": true, "x\u0085": true,
	} {
		if err := checkClass(name); (err != nil) != bad {
			t.Errorf("checkClass(%q) = %v, want refused=%v", name, err, bad)
		}
	}
}

// The decoder expects the previous event's classes in the previous order;
// whatever the next event's keys really are, it must read them as the
// stateless decoder does.
func TestProbsKeysAgainstThePreviousOrder(t *testing.T) {
	dec := &Decoder{Limits: DefaultLimits()}
	event := func(probs string) []byte {
		return fmt.Appendf(nil, `{"event_id":"e","ts":%q,"model":"m","model_version":"v","source":"s",`+
			`"task":"classification","image_uri":"file:///x.jpg","probs":{%s}}`, time.Now().UTC().Format(time.RFC3339), probs)
	}
	for _, probs := range []string{
		`"a":0.5,"b":0.5`, `"a":0.5,"b":0.5`,
		`"\u0061":0.25,"b":0.75`, // the expected key, escaped
		`"ab":0.5,"b":0.5`,       // the expected key is a prefix
		`"b":0.5,"a":0.5`,        // another order
		`"b":0.5,"a":0.25,"c":0.25`,
		`"b":0.5,"a":0.5`, `"b":0.5,"a\"":0.5`,
	} {
		want, werr := DecodePrediction(event(probs))
		got, err := dec.Prediction(event(probs))
		if (err != nil) != (werr != nil) || !slices.Equal(got.Probs, want.Probs) {
			t.Fatalf("probs {%s}: decoder read %v (%v), stateless %v (%v)", probs, got.Probs, err, want.Probs, werr)
		}
	}
}
