package activelearning

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/lookout-dev/lookout/activelearning/queue"
)

// WriteJSONL writes one JSON object per picked item (for CVAT importers,
// scripts and notebooks).
func WriteJSONL(w io.Writer, items []queue.Item) error {
	enc := json.NewEncoder(w)
	for i := range items {
		if err := enc.Encode(&items[i]); err != nil {
			return fmt.Errorf("write jsonl item %s: %w", items[i].EventID, err)
		}
	}
	return nil
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"event_id", "selection_id", "rank", "picked_at", "image_uri", "model", "model_version",
	"source", "task", "predicted_class", "confidence", "score", "reasons", "scores"}

// WriteCSV writes one row per picked item, for spreadsheets. Reasons are
// joined by "; " and scores written as name=value pairs.
func WriteCSV(w io.Writer, items []queue.Item) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, it := range items {
		scores := make([]string, len(it.ScoreNames))
		for i, n := range it.ScoreNames {
			if i < len(it.ScoreValues) {
				scores[i] = n + "=" + strconv.FormatFloat(float64(it.ScoreValues[i]), 'g', 4, 32)
			}
		}
		row := []string{it.EventID, it.SelectionID, strconv.Itoa(int(it.Rank)), it.PickedAt.UTC().Format(time.RFC3339),
			it.ImageURI, it.Model, it.ModelVersion, it.Source, it.Task, it.PredictedClass,
			strconv.FormatFloat(it.Confidence(), 'g', 4, 64), strconv.FormatFloat(it.Score, 'g', 4, 64),
			strings.Join(it.Reasons, "; "), strings.Join(scores, " ")}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv item %s: %w", it.EventID, err)
		}
	}
	cw.Flush()
	return cw.Error()
}
