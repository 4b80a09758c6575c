package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// BenchmarkDecodeAndInsert measures lookout's own CPU per event on the
// ingest path: decode + validate, build the columns, send to ClickHouse.
func BenchmarkDecodeAndInsert(b *testing.B) {
	benchmarkIngest(b, func(db driver.Conn, items []event.Prediction) error {
		return ingest.InsertPredictions(context.Background(), db, items, time.Now())
	})
}

// BenchmarkDecodeAndBuild is BenchmarkDecodeAndInsert without the send: the
// client's CPU per event alone, free of the ClickHouse server's share of a
// 2-core machine.
func BenchmarkDecodeAndBuild(b *testing.B) {
	benchmarkIngest(b, func(db driver.Conn, items []event.Prediction) error {
		batch, err := ingest.BuildBatch(context.Background(), db, items, time.Now())
		if err != nil {
			return err
		}
		return batch.Abort()
	})
}

func benchmarkIngest(b *testing.B, store func(driver.Conn, []event.Prediction) error) {
	db, _ := testenv.ClickHouse(b)
	const batch = 10000
	raw := make([][]byte, batch)
	base := time.Now().Add(-time.Minute)
	for i := range raw {
		raw[i] = []byte(fmt.Sprintf(`{"schema_version":1,"event_id":"e-%08d","ts":%q,"model":"defect-classifier","model_version":"v1",`+
			`"source":"cam-%d","task":"classification","image_uri":"file:///data/cam/%08d.jpg","predicted_class":"good",`+
			`"probs":{"good":0.81,"scratch":0.05,"dent":0.03,"crack":0.02,"hole":0.01,"stain":0.02,"burr":0.01,"rust":0.01,`+
			`"chip":0.01,"warp":0.01,"missing_part":0.01,"discoloration":0.01},"latency_ms":12.5,"arm":"stable"}`,
			i, base.Format(time.RFC3339Nano), i%3, i))
	}
	dec := &event.Decoder{Limits: event.DefaultLimits()}
	items := make([]event.Prediction, batch)
	b.ReportAllocs()
	for b.Loop() {
		for i, r := range raw {
			p, err := dec.Prediction(r)
			if err != nil {
				b.Fatal(err)
			}
			items[i] = p
		}
		if err := store(db, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}
