// Package event defines lookout's wire contract: the prediction and label events
// that model servers (or the canary router) publish to Kafka, how they are
// decoded, and the rules an event must pass before it may reach ClickHouse.
//
// Decoding is strict on purpose: an event that does not validate is refused with
// a machine-readable reason so the consumer can route it to the dead-letter
// topic instead of storing a half-understood row.
package event

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the newest event schema this build understands. Events that
// omit schema_version are read as version 1.
const SchemaVersion = 1

// Tasks a prediction may belong to.
const (
	TaskClassification = "classification"
	TaskDetection      = "detection"
)

// Arms a routed prediction may carry.
const (
	ArmStable = "stable"
	ArmCanary = "canary"
	ArmShadow = "shadow"
)

// ClassScore is one entry of a top-k list.
type ClassScore struct {
	Class string  `json:"class"`
	Score float64 `json:"score"`
}

// Box is one detection.
type Box struct {
	Class string     `json:"class"`
	Score float64    `json:"score"`
	XYXY  [4]float64 `json:"xyxy"`
}

// Prediction is one model output for one image, as published on the
// predictions topic. Probs holds the full softmax, sorted by class name.
type Prediction struct {
	SchemaVersion  int          `json:"schema_version,omitempty"`
	EventID        string       `json:"event_id"`
	TS             time.Time    `json:"ts"`
	Model          string       `json:"model"`
	ModelVersion   string       `json:"model_version"`
	Source         string       `json:"source"`
	Task           string       `json:"task"`
	ImageURI       string       `json:"image_uri"`
	PredictedClass string       `json:"predicted_class,omitempty"`
	Probs          Probs        `json:"probs,omitempty"`
	TopK           []ClassScore `json:"top_k,omitempty"`
	Boxes          []Box        `json:"boxes,omitempty"`
	LatencyMS      *float64     `json:"latency_ms,omitempty"`
	Arm            string       `json:"arm,omitempty"`
	RolloutID      string       `json:"rollout_id,omitempty"`
}

// Label is a ground-truth answer for an earlier prediction, published on the
// labels topic by annotators or the labelling tool.
type Label struct {
	SchemaVersion int       `json:"schema_version,omitempty"`
	EventID       string    `json:"event_id"`
	Label         string    `json:"label"`
	Boxes         []Box     `json:"boxes,omitempty"`
	Annotator     string    `json:"annotator"`
	TS            time.Time `json:"ts"`
}

// Encode renders p as the JSON published on the wire, with the timestamp at
// millisecond precision as the contract requires.
func (p Prediction) Encode() ([]byte, error) {
	if p.SchemaVersion == 0 {
		p.SchemaVersion = SchemaVersion
	}
	p.TS = p.TS.UTC().Truncate(time.Millisecond)
	return json.Marshal(p)
}

// Encode renders l as the JSON published on the wire.
func (l Label) Encode() ([]byte, error) {
	if l.SchemaVersion == 0 {
		l.SchemaVersion = SchemaVersion
	}
	l.TS = l.TS.UTC().Truncate(time.Millisecond)
	return json.Marshal(l)
}
