// Package labelstudio connects the labelling queue to Label Studio: it turns
// queue items into Label Studio tasks (the image URL plus the model's
// prediction as a pre-annotation with its score), imports them into a
// project through POST /api/projects/{id}/import with "Authorization: Token
// …", and takes annotations back either from Label Studio's webhook (checked
// against a shared secret header) or by polling
// GET /api/projects/{id}/export?exportType=JSON.
//
// Classification projects use a Choices control (from_name, default "class")
// on an Image object (to_name, default "image"). Detection pre-annotations are
// RectangleLabels, sent only when the boxes are normalised to [0,1] (Label
// Studio wants percentages of the image, and lookout does not know the pixel
// size); annotated rectangles come back as normalised xyxy boxes.
package labelstudio

import (
	"net/url"
	"path/filepath"
	"strings"

	"github.com/lookout-dev/lookout/activelearning/queue"
)

// Task is one Label Studio task in its import JSON format.
type Task struct {
	Data        map[string]any `json:"data"`
	Predictions []Prediction   `json:"predictions,omitempty"`
}

// Prediction is a pre-annotation.
type Prediction struct {
	ModelVersion string   `json:"model_version,omitempty"`
	Score        float64  `json:"score"`
	Result       []Result `json:"result"`
}

// Result is one region or choice of a prediction or annotation.
type Result struct {
	ID       string  `json:"id,omitempty"`
	FromName string  `json:"from_name"`
	ToName   string  `json:"to_name"`
	Type     string  `json:"type"`
	Value    Value   `json:"value"`
	Score    float64 `json:"score,omitempty"`
}

// Value holds the fields of the result types lookout uses.
type Value struct {
	Choices         []string `json:"choices,omitempty"`
	RectangleLabels []string `json:"rectanglelabels,omitempty"`
	X               *float64 `json:"x,omitempty"`
	Y               *float64 `json:"y,omitempty"`
	Width           *float64 `json:"width,omitempty"`
	Height          *float64 `json:"height,omitempty"`
	Rotation        *float64 `json:"rotation,omitempty"`
}

// TaskOptions shape the exported tasks.
type TaskOptions struct {
	// FromName and ToName are the control and object tag names of the
	// project's labelling config.
	FromName, ToName string
	// ImageRoot and ImageURLPrefix rewrite file:// URIs below ImageRoot to
	// ImageURLPrefix + the relative path, where Label Studio can fetch them.
	ImageRoot, ImageURLPrefix string
}

// ImageKey is the task data field holding the image URL ($image in the
// labelling config).
const ImageKey = "image"

// Tasks converts queue items into Label Studio tasks. The task data keeps
// event_id, so annotations can be matched back to queue items.
func Tasks(items []queue.Item, o TaskOptions) []Task {
	out := make([]Task, len(items))
	for i, it := range items {
		out[i] = Task{
			Data: map[string]any{
				ImageKey: o.imageURL(it.ImageURI), "event_id": it.EventID, "model": it.Model,
				"model_version": it.ModelVersion, "source": it.Source, "predicted_class": it.PredictedClass,
				"reasons": strings.Join(it.Reasons, ", "), "selection_score": it.Score,
			},
			Predictions: []Prediction{prediction(it, o)},
		}
	}
	return out
}

func prediction(it queue.Item, o TaskOptions) Prediction {
	p := Prediction{ModelVersion: it.Model + ":" + it.ModelVersion, Score: it.Confidence(), Result: []Result{}}
	if it.PredictedClass != "" && len(it.BoxScores) == 0 {
		p.Result = append(p.Result, Result{FromName: o.FromName, ToName: o.ToName, Type: "choices",
			Value: Value{Choices: []string{it.PredictedClass}}, Score: it.Confidence()})
	}
	for _, b := range it.Boxes() {
		if !normalised(b.XYXY) {
			continue
		}
		x, y := 100*b.XYXY[0], 100*b.XYXY[1]
		w, h := 100*(b.XYXY[2]-b.XYXY[0]), 100*(b.XYXY[3]-b.XYXY[1])
		p.Result = append(p.Result, Result{FromName: o.FromName, ToName: o.ToName, Type: "rectanglelabels",
			Value: Value{RectangleLabels: []string{b.Class}, X: &x, Y: &y, Width: &w, Height: &h}, Score: b.Score})
	}
	return p
}

func normalised(xyxy [4]float64) bool {
	for _, v := range xyxy {
		if v < 0 || v > 1 {
			return false
		}
	}
	return xyxy[2] > xyxy[0] && xyxy[3] > xyxy[1]
}

func (o TaskOptions) imageURL(uri string) string {
	if o.ImageURLPrefix == "" || !strings.HasPrefix(uri, "file://") {
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	root, err := filepath.Abs(o.ImageRoot)
	if err != nil {
		return uri
	}
	rel, err := filepath.Rel(root, u.Path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return uri
	}
	return strings.TrimSuffix(o.ImageURLPrefix, "/") + "/" + filepath.ToSlash(rel)
}
