package router

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// appendPrediction must write exactly what event.Prediction.Encode writes.
func TestAppendPredictionMatchesEncode(t *testing.T) {
	lat := 1.25
	tiny, huge := 3e-9, 2.5e22
	cases := []event.Prediction{
		{EventID: "a", TS: time.Date(2026, 1, 2, 3, 4, 5, 678999999, time.FixedZone("x", 3600)), Model: "m",
			ModelVersion: "v1", Source: "cam-1", Task: event.TaskClassification, ImageURI: "file:///a.png",
			PredictedClass: "good", Probs: event.ProbsOf(map[string]float64{"good": 0.9, "dent": 0.1, "z": 0, "neg": -0.0000001}),
			LatencyMS: &lat, Arm: "canary", RolloutID: "ro-1"},
		{SchemaVersion: 1, EventID: `quo"te\back<>&` + "\u2028\u2029\x00\x1f\t\n\r\b\f\xff é 日本", TS: time.Unix(0, 0),
			Task: event.TaskDetection, Boxes: []event.Box{{Class: "dent", Score: 0.5, XYXY: [4]float64{1, 2.5, tiny, huge}}},
			TopK: []event.ClassScore{{Class: "a", Score: 1e21}, {Class: "b", Score: 1e-6}}, LatencyMS: &tiny},
		{},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		p := event.Prediction{EventID: randomString(rng), Source: randomString(rng), ImageURI: randomString(rng),
			TS: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9))}
		probs := map[string]float64{}
		for range rng.IntN(15) {
			probs[randomString(rng)] = randomFloat(rng)
		}
		p.Probs = event.ProbsOf(probs)
		f := randomFloat(rng)
		p.LatencyMS = &f
		cases = append(cases, p)
	}
	for i, p := range cases {
		want, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPrediction(nil, &p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
	nan := math.NaN()
	if _, err := appendPrediction(nil, &event.Prediction{LatencyMS: &nan}); err == nil {
		t.Error("NaN encoded")
	}
}

func randomString(rng *rand.Rand) string {
	const alphabet = "abc<>&\"\\/\x01\n é\u2028"
	b := make([]byte, rng.IntN(12))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func randomFloat(rng *rand.Rand) float64 {
	return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(60)-30))
}
