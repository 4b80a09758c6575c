package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Reasons an event is refused. They are stable, low-cardinality strings: they
// label dead-letter messages and metrics, so never put event data in them.
const (
	ReasonTooLarge         = "too_large"
	ReasonMalformedJSON    = "malformed_json"
	ReasonWrongType        = "wrong_type"
	ReasonSchemaVersion    = "unsupported_schema_version"
	ReasonMissingField     = "missing_field"
	ReasonBadField         = "bad_field"
	ReasonBadTimestamp     = "bad_timestamp"
	ReasonBadTask          = "bad_task"
	ReasonBadImageURI      = "bad_image_uri"
	ReasonBadProbabilities = "bad_probabilities"
	ReasonBadBoxes         = "bad_boxes"
)

// MaxEventBytes bounds one encoded event. Real predictions are a few hundred
// bytes; anything this large is a producer bug, not a prediction.
const MaxEventBytes = 256 << 10

const (
	maxIDLen    = 256
	maxNameLen  = 128
	maxURILen   = 2048
	probSumTol  = 0.01
	maxClasses  = 10000
	maxBoxes    = 10000
	earliestTS  = 2000
	latestTS    = 2100
	maxClassLen = 128
)

// InvalidError explains why an event was refused. Reason is one of the Reason*
// constants; Detail is for people and may quote the offending field.
type InvalidError struct {
	Reason string
	Detail string
}

func (e *InvalidError) Error() string { return e.Reason + ": " + e.Detail }

func invalid(reason, format string, args ...any) *InvalidError {
	return &InvalidError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the refusal reason carried by err, or "" if err is not an
// InvalidError.
func ReasonOf(err error) string {
	var inv *InvalidError
	if errors.As(err, &inv) {
		return inv.Reason
	}
	return ""
}

// DecodePrediction parses and validates one prediction event. Any error it
// returns is an *InvalidError.
func DecodePrediction(data []byte) (Prediction, error) {
	return decodePrediction(data, nil)
}

func decodePrediction(data []byte, in *decodeState) (Prediction, error) {
	p, err := parsePrediction(data, in)
	if err != nil {
		return Prediction{}, err
	}
	if err := p.Validate(); err != nil {
		return Prediction{}, err
	}
	if p.SchemaVersion == 0 {
		p.SchemaVersion = 1
	}
	if p.PredictedClass == "" {
		p.PredictedClass = p.Scores().TopClass
	}
	return p, nil
}

// DecodeLabel parses and validates one label event.
func DecodeLabel(data []byte) (Label, error) {
	var l Label
	if err := decodeJSON(data, &l); err != nil {
		return Label{}, err
	}
	if err := l.Validate(); err != nil {
		return Label{}, err
	}
	if l.SchemaVersion == 0 {
		l.SchemaVersion = 1
	}
	return l, nil
}

func decodeJSON(data []byte, v any) error {
	if len(data) > MaxEventBytes {
		return invalid(ReasonTooLarge, "event is %d bytes, limit %d", len(data), MaxEventBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var timeErr *time.ParseError
		switch {
		case errors.As(err, &typeErr):
			return invalid(ReasonWrongType, "field %q: got JSON %s, want %s", typeErr.Field, typeErr.Value, typeErr.Type)
		case errors.As(err, &timeErr):
			return invalid(ReasonBadTimestamp, "ts is not RFC 3339: %v", err)
		case strings.Contains(err.Error(), "parsing time"):
			return invalid(ReasonBadTimestamp, "ts is not RFC 3339: %v", err)
		default:
			return invalid(ReasonMalformedJSON, "%v", err)
		}
	}
	if dec.More() {
		return invalid(ReasonMalformedJSON, "trailing data after the JSON object")
	}
	return nil
}

// Validate checks p against the event contract.
func (p *Prediction) Validate() error {
	if p.SchemaVersion < 0 || p.SchemaVersion > SchemaVersion {
		return invalid(ReasonSchemaVersion, "schema_version %d, this build reads up to %d", p.SchemaVersion, SchemaVersion)
	}
	if err := checkID(p.EventID); err != nil {
		return err
	}
	if err := checkTS(p.TS); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"model", p.Model}, {"model_version", p.ModelVersion}, {"source", p.Source}} {
		if err := checkName(f.name, f.v, maxNameLen); err != nil {
			return err
		}
	}
	if err := checkImageURI(p.ImageURI); err != nil {
		return err
	}
	if err := p.checkOptional(); err != nil {
		return err
	}
	switch p.Task {
	case TaskClassification:
		return p.checkClassification()
	case TaskDetection:
		return checkBoxes(p.Boxes)
	case "":
		return invalid(ReasonMissingField, "task is required")
	default:
		return invalid(ReasonBadTask, "task %q is neither %q nor %q", p.Task, TaskClassification, TaskDetection)
	}
}

func (p *Prediction) checkOptional() error {
	if p.LatencyMS != nil && (!finite(*p.LatencyMS) || *p.LatencyMS < 0) {
		return invalid(ReasonBadField, "latency_ms must be a non-negative number")
	}
	switch p.Arm {
	case "", ArmStable, ArmCanary, ArmShadow:
	default:
		return invalid(ReasonBadField, "arm %q is not stable, canary or shadow", truncate(p.Arm))
	}
	if len(p.RolloutID) > maxNameLen {
		return invalid(ReasonBadField, "rollout_id longer than %d bytes", maxNameLen)
	}
	return nil
}

func (p *Prediction) checkClassification() error {
	if len(p.Boxes) > 0 {
		return invalid(ReasonBadField, "boxes given for a classification event")
	}
	switch {
	case len(p.Probs) > 0:
		if err := checkProbs(p.Probs); err != nil {
			return err
		}
		if p.PredictedClass != "" {
			if _, ok := p.Probs.Get(p.PredictedClass); !ok {
				return invalid(ReasonBadProbabilities, "predicted_class %q has no entry in probs", truncate(p.PredictedClass))
			}
		}
		return nil
	case len(p.TopK) > 0:
		return checkTopK(p.TopK)
	default:
		return invalid(ReasonMissingField, "classification needs probs or top_k")
	}
}

func checkProbs(probs Probs) error {
	if len(probs) > maxClasses {
		return invalid(ReasonBadProbabilities, "%d classes, limit %d", len(probs), maxClasses)
	}
	sum := 0.0
	for i, e := range probs {
		c, v := e.Class, e.Score
		if err := checkClass(c); err != nil {
			return err
		}
		// Decoders sort; this catches Probs built by hand out of order,
		// which ingest would store under the wrong class.
		if i > 0 && probs[i-1].Class >= c {
			return invalid(ReasonBadProbabilities, "probs not sorted by class at %q", truncate(c))
		}
		if !finite(v) || v < 0 || v > 1 {
			return invalid(ReasonBadProbabilities, "probs[%q] = %v is outside [0,1]", truncate(c), v)
		}
		sum += v
	}
	if math.Abs(sum-1) > probSumTol {
		return invalid(ReasonBadProbabilities, "probs sum to %.4f, want 1 ± %.2f", sum, probSumTol)
	}
	return nil
}

func checkTopK(top []ClassScore) error {
	if len(top) > maxClasses {
		return invalid(ReasonBadProbabilities, "%d top_k entries, limit %d", len(top), maxClasses)
	}
	sum := 0.0
	for _, cs := range top {
		if err := checkClass(cs.Class); err != nil {
			return err
		}
		if !finite(cs.Score) || cs.Score < 0 || cs.Score > 1 {
			return invalid(ReasonBadProbabilities, "top_k score %v for %q is outside [0,1]", cs.Score, truncate(cs.Class))
		}
		sum += cs.Score
	}
	if sum > 1+probSumTol {
		return invalid(ReasonBadProbabilities, "top_k scores sum to %.4f, more than 1", sum)
	}
	return nil
}

func checkBoxes(boxes []Box) error {
	if len(boxes) > maxBoxes {
		return invalid(ReasonBadBoxes, "%d boxes, limit %d", len(boxes), maxBoxes)
	}
	for i, b := range boxes {
		if b.Class == "" || len(b.Class) > maxClassLen {
			return invalid(ReasonBadBoxes, "box %d: class must be 1..%d bytes", i, maxClassLen)
		}
		if !finite(b.Score) || b.Score < 0 || b.Score > 1 {
			return invalid(ReasonBadBoxes, "box %d: score %v is outside [0,1]", i, b.Score)
		}
		for _, v := range b.XYXY {
			if !finite(v) {
				return invalid(ReasonBadBoxes, "box %d: coordinates must be finite", i)
			}
		}
		if b.XYXY[2] < b.XYXY[0] || b.XYXY[3] < b.XYXY[1] {
			return invalid(ReasonBadBoxes, "box %d: xyxy needs x1<=x2 and y1<=y2", i)
		}
	}
	return nil
}

// Validate checks l against the label contract.
func (l *Label) Validate() error {
	if l.SchemaVersion < 0 || l.SchemaVersion > SchemaVersion {
		return invalid(ReasonSchemaVersion, "schema_version %d, this build reads up to %d", l.SchemaVersion, SchemaVersion)
	}
	if err := checkID(l.EventID); err != nil {
		return err
	}
	if err := checkTS(l.TS); err != nil {
		return err
	}
	if l.Label == "" && len(l.Boxes) == 0 {
		return invalid(ReasonMissingField, "a label needs label or boxes")
	}
	if l.Label != "" {
		if err := checkClass(l.Label); err != nil {
			return err
		}
	}
	if err := checkBoxes(l.Boxes); err != nil {
		return err
	}
	return checkName("annotator", l.Annotator, maxNameLen)
}

func checkID(id string) error {
	if id == "" {
		return invalid(ReasonMissingField, "event_id is required")
	}
	if len(id) > maxIDLen || hasControl(id) {
		return invalid(ReasonBadField, "event_id must be 1..%d printable bytes", maxIDLen)
	}
	return nil
}

func checkTS(ts time.Time) error {
	if ts.IsZero() {
		return invalid(ReasonMissingField, "ts is required")
	}
	if y := ts.UTC().Year(); y < earliestTS || y >= latestTS {
		return invalid(ReasonBadTimestamp, "ts year %d is outside %d..%d", y, earliestTS, latestTS-1)
	}
	return nil
}

func checkName(field, v string, limit int) error {
	if v == "" {
		return invalid(ReasonMissingField, "%s is required", field)
	}
	if len(v) > limit || hasControl(v) {
		return invalid(ReasonBadField, "%s must be 1..%d printable bytes", field, limit)
	}
	return nil
}

// checkClass refuses commas too: the class list is stored comma-joined.
func checkClass(c string) error {
	if c == "" || len(c) > maxClassLen || badClassName(c) {
		return invalid(ReasonBadProbabilities, "class names must be 1..%d printable bytes without commas", maxClassLen)
	}
	return nil
}

func checkImageURI(uri string) error {
	if uri == "" {
		return invalid(ReasonMissingField, "image_uri is required")
	}
	if len(uri) > maxURILen || hasControl(uri) {
		return invalid(ReasonBadImageURI, "image_uri must be 1..%d printable bytes", maxURILen)
	}
	for _, scheme := range []string{"file://", "http://", "https://"} {
		if strings.HasPrefix(uri, scheme) && len(uri) > len(scheme) {
			return nil
		}
	}
	return invalid(ReasonBadImageURI, "image_uri must start with file://, http:// or https://")
}

// badClassName is hasControl plus commas (class lists are stored
// comma-joined) in one pass: twelve names an event, 100k events a second.
func badClassName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == ',' {
			return true
		} else if c >= 0x80 {
			return hasControl(s[i:]) || strings.IndexByte(s[i:], ',') >= 0
		}
	}
	return false
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		} else if c >= 0x80 {
			// Rare non-ASCII names take the full Unicode check (C1 controls).
			return strings.ContainsFunc(s[i:], unicode.IsControl)
		}
	}
	return false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// truncate keeps refusal details short when they quote producer data.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
