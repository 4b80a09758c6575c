package event

import (
	"errors"
	"testing"
)

// FuzzDecodePrediction checks that no input panics the decoder, that every
// refusal carries a reason, and that whatever is accepted re-validates after
// a round trip through Encode.
func FuzzDecodePrediction(f *testing.F) {
	f.Add([]byte(validClassification))
	f.Add([]byte(`{"event_id":"d1","ts":"2026-11-23T10:00:00Z","model":"y","model_version":"8","source":"l",
	 "task":"detection","image_uri":"https://c/a.jpg","boxes":[{"class":"crack","score":0.4,"xyxy":[1,2,30,40]}]}`))
	f.Add([]byte(`{"event_id":"x","probs":{"a":1e309}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePrediction(data)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Reason == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		b, err := p.Encode()
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		if _, err := DecodePrediction(b); err != nil {
			t.Fatalf("accepted event fails after a round trip: %v\n%s", err, b)
		}
	})
}
