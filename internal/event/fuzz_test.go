package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
	// One Decoder across inputs: its interned names and learned class order
	// carry over from input to input, and must never change a result.
	stateful := &Decoder{}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePrediction(data)
		q, qerr := stateful.Prediction(data)
		if (err == nil) != (qerr == nil) || ReasonOf(err) != ReasonOf(qerr) || !slices.Equal(p.Probs, q.Probs) {
			t.Fatalf("stateless decode %v (%v), with state %v (%v)", p.Probs, err, q.Probs, qerr)
		}
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

// FuzzScanner holds the hand-written scanner to encoding/json: it accepts
// exactly the valid JSON documents (plus the NaN and ±Infinity that Python
// writes, and minus nesting deeper than maxDepth), and reads strings to the
// same text.
func FuzzScanner(f *testing.F) {
	for _, seed := range []string{validClassification, `"a\u00e9\ud83d\ude00\n"`, `[1,-0.5e+3,true,null,{"a":[]}]`,
		`"\ud800x"`, `01`, `1.`, `{"a":1,}`, `NaN`, `-Infinity`, "\"a\x01\"", `"\/\b\f\r\t\""`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := scanner{data: data}
		err := s.skip(0)
		if err == nil {
			err = s.end()
		}
		valid := json.Valid(data)
		switch {
		case err == nil && !valid && !bytes.ContainsAny(data, "NI"):
			t.Fatalf("scanner accepts invalid JSON %q", data)
		case err != nil && valid && !strings.Contains(err.Error(), "nested deeper"):
			t.Fatalf("scanner refuses valid JSON %q: %v", data, err)
		}
		var want string
		if !valid || !utf8.Valid(data) || json.Unmarshal(data, &want) != nil {
			return
		}
		s = scanner{data: data}
		s.peek()
		got, err := s.str(&s.valBuf)
		if err != nil || string(got) != want {
			t.Fatalf("string %q: scanner read %q (%v), encoding/json %q", data, got, err, want)
		}
	})
}

func TestSpecial8(t *testing.T) {
	for b := 0; b < 256; b++ {
		want := b == '"' || b == '\\' || b < 0x20
		for pos := range 8 {
			x := uint64(0x6161616161616161) // "aaaaaaaa"
			x = x&^(0xff<<(8*pos)) | uint64(b)<<(8*pos)
			if got := special8(x); got != want {
				t.Fatalf("byte %#x at %d: special8 = %v, want %v", b, pos, got, want)
			}
		}
	}
}

// FuzzSimpleDecimal checks the scanner's fast number path against strconv.
func FuzzSimpleDecimal(f *testing.F) {
	for _, seed := range []string{"0.01", "-0.89", "5.5", "123456789012345", "0.000000000000000000001", "1.7976931348623157", "-0", "0.1234567890123456"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s := scanner{data: []byte(text)}
		if !s.numberText() || s.pos != len(text) {
			return
		}
		got, ok := simpleDecimal([]byte(text))
		want, _ := strconv.ParseFloat(text, 64)
		if ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: simpleDecimal %v, strconv %v", text, got, want)
		}
	})
}
