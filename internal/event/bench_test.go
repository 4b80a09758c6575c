package event

import (
	"fmt"
	"testing"
	"time"
)

// benchEvent is a classification event with 12-class probs, the shape the
// ingest throughput target is stated for.
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"schema_version":1,"event_id":"evt-%08d","ts":"2026-11-23T10:00:00.%03dZ","model":"defect-classifier",`+
		`"model_version":"v1","source":"cam-%d","task":"classification","image_uri":"file:///data/cam/%08d.jpg",`+
		`"predicted_class":"good","probs":{"good":0.81,"scratch":0.05,"dent":0.03,"crack":0.02,"hole":0.01,"stain":0.02,`+
		`"burr":0.01,"rust":0.01,"chip":0.01,"warp":0.01,"missing_part":0.01,"discoloration":0.01},"latency_ms":12.5,"arm":"stable"}`,
		i, i%1000, i%3, i)
}

// BenchmarkDecodePrediction decodes as ingest does: one Decoder, whose
// interner shares the strings that repeat between events.
func BenchmarkDecodePrediction(b *testing.B) {
	data := benchEvent(1)
	dec := &Decoder{Limits: DefaultLimits(), Now: func() time.Time { return time.Date(2026, 11, 23, 10, 0, 1, 0, time.UTC) }}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Prediction(data); err != nil {
			b.Fatal(err)
		}
	}
}
