package router

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lookout-dev/lookout/internal/event"
)

func testutilValue(c *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(label))
}

func TestExtract(t *testing.T) {
	x := Extractor{Classes: []string{"good", "dent", "stain"}}
	for _, c := range []struct {
		name, body string
		want       []Output
	}{
		{"v1 arrays", `{"predictions":[[0.1,0.7,0.2],[0.8,0.1,0.1]]}`, []Output{
			{Class: "dent", Probs: event.ProbsOf(map[string]float64{"good": 0.1, "dent": 0.7, "stain": 0.2})},
			{Class: "good", Probs: event.ProbsOf(map[string]float64{"good": 0.8, "dent": 0.1, "stain": 0.1})}}},
		{"v1 objects", `{"predictions":[{"probs":{"a":0.4,"b":0.6}},{"label":"x"}]}`, []Output{
			{Class: "b", Probs: event.ProbsOf(map[string]float64{"a": 0.4, "b": 0.6})}, {Class: "x"}}},
		{"v1 labels", `{"predictions":["good"]}`, []Output{{Class: "good"}}},
		{"v2 2-d", `{"model_name":"m","outputs":[{"name":"probs","shape":[2,3],"datatype":"FP32","data":[0.1,0.7,0.2,0.2,0.2,0.6]}]}`, []Output{
			{Class: "dent", Probs: event.ProbsOf(map[string]float64{"good": 0.1, "dent": 0.7, "stain": 0.2})},
			{Class: "stain", Probs: event.ProbsOf(map[string]float64{"good": 0.2, "dent": 0.2, "stain": 0.6})}}},
	} {
		got, err := x.Extract([]byte(c.body))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := x.Extract([]byte(`{"foo":1}`)); err == nil {
		t.Error("accepted a response without predictions")
	}
	named := Extractor{OutputName: "label"}
	got, err := named.Extract([]byte(`{"outputs":[{"name":"probs","shape":[1,2],"datatype":"FP32","data":[0.5,0.5]},{"name":"label","shape":[1],"datatype":"BYTES","data":["dent"]}]}`))
	if err != nil || len(got) != 1 || got[0].Class != "dent" {
		t.Errorf("named BYTES output: %+v %v", got, err)
	}
}

func TestImageURIs(t *testing.T) {
	for body, want := range map[string][]string{
		`{"instances":[{"image_uri":"a"},{"image_uri":"b"}]}`:                               {"a", "b"},
		`{"inputs":[{"name":"image_uri","datatype":"BYTES","shape":[2],"data":["a","b"]}]}`: {"a", "b"},
		`{"image_uri":"a","instances":[[1,2]]}`:                                             {"a"},
		`[1,2]`:                                                                             nil,
	} {
		if got := ImageURIs([]byte(body), "image_uri"); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
}

// Bucket must stay stable across releases (a change would reshuffle every
// camera mid-rollout after an upgrade): it is FNV-1a of rollout, 0, key
// with a splitmix64 finaliser, checked here against hash/fnv.
func TestBucketIsStable(t *testing.T) {
	for _, c := range [][2]string{{"r1", "cam-1"}, {"", ""}, {"ro-abc", "10.0.0.7"}} {
		h := fnv.New64a()
		h.Write([]byte(c[0] + "\x00" + c[1]))
		x := h.Sum64()
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		x ^= x >> 31
		if got, want := Bucket(c[0], c[1]), int(x%Buckets); got != want {
			t.Errorf("Bucket(%q, %q) = %d, want %d", c[0], c[1], got, want)
		}
	}
}

func TestExtractShapes(t *testing.T) {
	x := Extractor{Classes: []string{"good", "dent"}}
	for _, c := range []struct {
		name, body string
		want       []Output
	}{
		{"probabilities array", `{"predictions":[{"probabilities":[0.2,0.8]}]}`,
			[]Output{{Class: "dent", Probs: event.ProbsOf(map[string]float64{"good": 0.2, "dent": 0.8})}}},
		{"class wins over argmax", `{"predictions":[{"predicted_class":"good","probs":{"good":0.1,"dent":0.9}}]}`,
			[]Output{{Class: "good", Probs: event.ProbsOf(map[string]float64{"good": 0.1, "dent": 0.9})}}},
		{"null probs", `{"predictions":[{"label":"x","probs":null}]}`, []Output{{Class: "x"}}},
		{"boxes", `{"predictions":[{"boxes":[{"class":"dent","score":0.7,"xyxy":[1,2,3,4]}]}]}`,
			[]Output{{Boxes: []event.Box{{Class: "dent", Score: 0.7, XYXY: [4]float64{1, 2, 3, 4}}}}}},
		{"escaped names", `{"predictions":[{"probs":{"a\"b":1}}]}`,
			[]Output{{Class: `a"b`, Probs: event.ProbsOf(map[string]float64{`a"b`: 1})}}},
		{"empty", `{"predictions":[]}`, []Output{}},
		{"v2 1-d", `{"outputs":[{"name":"p","shape":[2],"datatype":"FP32","data":[0.3,0.7]}]}`,
			[]Output{{Class: "dent", Probs: event.ProbsOf(map[string]float64{"good": 0.3, "dent": 0.7})}}},
	} {
		got, err := x.Extract([]byte(c.body))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{`[1]`, `{"predictions":{}}`, `{"predictions":[true]}`, `{"predictions":[{"probs":"x"}]}`,
		`{"predictions":[{"probs":{"a":"x"}}]}`, `{"predictions":[{"boxes":[{"xyxy":[1]}]}]}`, `{"predictions":[[1,"a"]]}`,
		`{"outputs":[{"name":"p","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}`, `not json`} {
		if got, err := x.Extract([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %+v", bad, got)
		}
	}
	// Strings handed out must not alias the parser's buffers, which the next parse reuses.
	first, _ := x.Extract([]byte(`{"predictions":["zzz-first"]}`))
	_, _ = x.Extract([]byte(`{"predictions":["yyy-other"]}`))
	uris := ImageURIs([]byte(`{"instances":[{"image_uri":"file:///keep.png"}]}`), "image_uri")
	_ = ImageURIs([]byte(`{"instances":[{"image_uri":"file:///XXXX.png"}]}`), "image_uri")
	if first[0].Class != "zzz-first" || uris[0] != "file:///keep.png" {
		t.Errorf("strings changed after the next parse: %q %q", first[0].Class, uris[0])
	}
}

// The distribution built in place (cached class order, repeats keeping the
// last value) must equal what decoding into a map and sorting gives, however
// the server orders its classes from one response to the next.
func TestExtractProbsMatchesMap(t *testing.T) {
	var x Extractor
	rng := rand.New(rand.NewPCG(3, 4))
	classes := []string{"good", "dent", "stain", "scratch", "a\"b", "z"}
	for range 500 {
		var body strings.Builder
		body.WriteString(`{"predictions":[{"probs":{`)
		n := rng.IntN(len(classes) + 3) // sometimes a class twice
		for j := range n {
			if j > 0 {
				body.WriteByte(',')
			}
			name, _ := json.Marshal(classes[rng.IntN(len(classes))])
			fmt.Fprintf(&body, "%s:%g", name, rng.Float64())
		}
		body.WriteString(`}}]}`)
		var want struct {
			Predictions []struct{ Probs map[string]float64 } `json:"predictions"`
		}
		if err := json.Unmarshal([]byte(body.String()), &want); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second call reuses the learned order
			got, err := x.Extract([]byte(body.String()))
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Probs, event.ProbsOf(want.Predictions[0].Probs)) {
				t.Fatalf("%s: %+v %v", body.String(), got, err)
			}
		}
	}
	// Columns without class names are named by index, in string order.
	got, err := x.Extract([]byte(`{"predictions":[[0,1,2,3,4,5,6,7,8,9,10.5]]}`))
	if err != nil || got[0].Class != "10" || got[0].Probs[1].Class != "1" || got[0].Probs[2].Class != "10" {
		t.Errorf("unnamed columns: %+v %v", got, err)
	}
}
