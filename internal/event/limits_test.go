package event

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecoderLimits(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	d := Decoder{Limits: Limits{MaxBytes: 2000, MaxClasses: 3, MaxBoxes: 1, MaxFuture: time.Hour, MaxAge: 24 * time.Hour},
		Now: func() time.Time { return now }}
	at := func(ts time.Time) []byte {
		return []byte(strings.Replace(validClassification, "2026-11-23T10:00:00.123Z", ts.Format(time.RFC3339Nano), 1))
	}
	if _, err := d.Prediction(at(now)); err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	four := strings.Replace(validClassification, `"dent":0.1}`, `"dent":0.05,"hole":0.05}`, 1)
	detection := `{"event_id":"d","ts":"2026-11-23T10:00:00Z","model":"y","model_version":"1","source":"s","task":"detection",` +
		`"image_uri":"file:///a","boxes":[{"class":"a","score":0.5,"xyxy":[0,0,1,1]},{"class":"b","score":0.5,"xyxy":[0,0,1,1]}]}`
	for _, c := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"future", at(now.Add(2 * time.Hour)), ReasonBadTimestamp},
		{"too old", at(now.Add(-48 * time.Hour)), ReasonBadTimestamp},
		{"too many classes", []byte(four), ReasonBadProbabilities},
		{"too many boxes", []byte(detection), ReasonBadBoxes},
		{"too large", fmt.Appendf(nil, `{"event_id":"%s"}`, strings.Repeat("x", 2000)), ReasonTooLarge},
	} {
		_, err := d.Prediction(c.data)
		if ReasonOf(err) != c.reason {
			t.Errorf("%s: err = %v, want reason %s", c.name, err, c.reason)
		}
	}
	late := []byte(`{"event_id":"e","label":"a","annotator":"x","ts":"2026-01-01T00:00:00Z"}`)
	if _, err := d.Label(late); err != nil {
		t.Errorf("a late label must be accepted: %v", err)
	}
}
