package activelearning

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/activelearning/queue"
)

func TestExports(t *testing.T) {
	items := []queue.Item{{EventID: "e,1", SelectionID: "s", PickedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ImageURI: "file:///x.png", Model: "m", PredictedClass: "dent", ProbValues: []float32{0.6, 0.4}, Score: 0.9,
		Reasons: []string{"uncertain", "novel"}, ScoreNames: []string{"entropy"}, ScoreValues: []float32{0.97}}}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, items); err != nil {
		t.Fatal(err)
	}
	var back queue.Item
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.EventID != "e,1" || len(back.Reasons) != 2 {
		t.Fatalf("jsonl round trip: %+v, %v", back, err)
	}
	buf.Reset()
	if err := WriteCSV(&buf, items); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != "e,1" || rows[1][12] != "uncertain; novel" ||
		!strings.HasPrefix(rows[1][13], "entropy=0.97") || rows[1][10] != "0.6" {
		t.Fatalf("csv rows %q, %v", rows, err)
	}
}
