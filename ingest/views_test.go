package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func TestAccuracyCountsLateLabelsOnceEach(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	ts := time.Now().UTC().Truncate(time.Second)
	pred := func(id, class string) event.Prediction {
		return event.Prediction{EventID: id, TS: ts, Model: "m", ModelVersion: "v2", Source: "cam-1",
			Task: event.TaskClassification, ImageURI: "file:///x", PredictedClass: class,
			Probs: event.ProbsOf(map[string]float64{class: 0.9, "other": 0.1})}
	}
	preds := []event.Prediction{pred("a", "dent"), pred("b", "dent"), pred("c", "good")}
	// The same batch twice: a redelivery must not count twice.
	for range 2 {
		if err := ingest.InsertPredictions(ctx, db, preds, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	labels := []event.Label{
		{EventID: "a", Label: "dent", Annotator: "x", TS: ts},
		{EventID: "b", Label: "good", Annotator: "x", TS: ts},
	}
	if err := ingest.InsertLabels(ctx, db, labels, time.Now()); err != nil {
		t.Fatal(err)
	}
	var labelled, correct uint64
	if err := db.QueryRow(ctx, "SELECT sum(labelled), sum(correct) FROM label_accuracy WHERE model_version = 'v2'").Scan(&labelled, &correct); err != nil {
		t.Fatal(err)
	}
	if labelled != 2 || correct != 1 {
		t.Fatalf("labelled=%d correct=%d, want 2 and 1", labelled, correct)
	}
	// A late label for c arrives: accuracy updates on the next read.
	late := []event.Label{{EventID: "c", Label: "good", Annotator: "x", TS: ts.Add(time.Hour)}}
	if err := ingest.InsertLabels(ctx, db, late, time.Now()); err != nil {
		t.Fatal(err)
	}
	var acc float64
	if err := db.QueryRow(ctx, "SELECT sum(correct) / sum(labelled) FROM label_accuracy").Scan(&acc); err != nil {
		t.Fatal(err)
	}
	if acc < 0.66 || acc > 0.67 {
		t.Fatalf("accuracy after the late label = %v, want 2/3", acc)
	}
}

func TestDetectionSummary(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	ts := time.Now().UTC().Truncate(time.Hour).Add(time.Minute)
	det := func(id string, boxes ...event.Box) event.Prediction {
		return event.Prediction{EventID: id, TS: ts, Model: "yolo", ModelVersion: "8", Source: "line-1",
			Task: event.TaskDetection, ImageURI: "file:///x", Boxes: boxes}
	}
	b := func(class string, score float64) event.Box {
		return event.Box{Class: class, Score: score, XYXY: [4]float64{0, 0, 10, 10}}
	}
	items := []event.Prediction{det("1", b("crack", 0.9), b("dent", 0.5)), det("2", b("crack", 0.7)), det("3")}
	for i := range items {
		items[i].PredictedClass = items[i].Scores().TopClass
	}
	if err := ingest.InsertPredictions(ctx, db, items, time.Now()); err != nil {
		t.Fatal(err)
	}
	var images, empty uint64
	var perImage float64
	var top []string
	if err := db.QueryRow(ctx, "SELECT images, images_without_boxes, boxes_per_image, top_classes FROM detection_summary").
		Scan(&images, &empty, &perImage, &top); err != nil {
		t.Fatal(err)
	}
	if images != 3 || empty != 1 || perImage != 1 || len(top) == 0 || top[0] != "crack" {
		t.Fatalf("images=%d empty=%d per_image=%v top=%v", images, empty, perImage, top)
	}
}
