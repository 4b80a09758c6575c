package event

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads one JSON document (RFC 8259) in a single pass, handing
// values straight to the caller instead of building a tree first: at 100k+
// events/s, a generic parse followed by a walk over its tree took twice the
// time. It accepts what encoding/json accepts, plus the NaN, Infinity and
// -Infinity that Python's json module writes by default, so such an event is
// refused for its non-finite number rather than as malformed JSON.
//
// Syntax errors end the scan. A field that is well-formed JSON but breaks the
// contract (a number where a string belongs) is recorded with refuse, its
// value skipped, and the scan goes on: a malformed document is reported as
// malformed whichever field comes first, as a tree parser would.
type scanner struct {
	data []byte
	pos  int
	// keyBuf and valBuf hold unescaped keys and string values; a key stays
	// valid while its value is read.
	keyBuf, valBuf []byte
	refused        error // the first contract error
}

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 100

func (s *scanner) syntax(format string, args ...any) error {
	return invalid(ReasonMalformedJSON, "offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// refuse records err unless an earlier field was refused already.
func (s *scanner) refuse(err error) {
	if s.refused == nil {
		s.refused = err
	}
}

func (s *scanner) failed() bool { return s.refused != nil }

// peek skips white space and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// found describes the next byte for an error message.
func (s *scanner) found() string {
	if c := s.peek(); c != 0 || s.pos < len(s.data) {
		return strconv.QuoteRune(rune(c))
	}
	return "end of input"
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax("want %q, got %s", c, s.found())
	}
	s.pos++
	return nil
}

// kind names the JSON type of the next value, for wrong-type messages.
func (s *scanner) kind() string {
	switch s.peek() {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return "null"
	}
	return "number"
}

// null reports whether the next value is the literal null.
func (s *scanner) null() bool { return s.peek() == 'n' }

// wrongType refuses field, whose value is not of the wanted type, and skips
// the value.
func (s *scanner) wrongType(field, want string) error {
	s.refuse(invalid(ReasonWrongType, "field %q: got JSON %s, want %s", field, s.kind(), want))
	return s.skip(0)
}

// object reads an object, calling member for each key with the cursor on
// its value; member must consume the value.
func (s *scanner) object(member func(key []byte) error) error {
	return s.objectExpecting(nil, func(key []byte, _ string) error { return member(key) })
}

// objectExpecting is object for callers that can guess the i-th key
// (expect(i), "" for no guess). A key that is exactly the guess, written
// without escapes, reaches member as known with a nil key.
func (s *scanner) objectExpecting(expect func(i int) string, member func(key []byte, known string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if s.peek() != '"' {
			return s.syntax("want a key, got %s", s.found())
		}
		var key []byte
		var known string
		if expect != nil {
			known = expect(i)
		}
		if known == "" || !s.quoted(known) {
			k, err := s.str(&s.keyBuf)
			if err != nil {
				return err
			}
			key, known = k, ""
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		s.peek()
		if err := member(key, known); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("want ',' or '}', got %s", s.found())
		}
	}
}

// array reads an array, calling elem with each element's index and the
// cursor on it; elem must consume the element.
func (s *scanner) array(elem func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		s.peek()
		if err := elem(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.syntax("want ',' or ']', got %s", s.found())
		}
	}
}

// quoted advances over the string "word" if it comes next, written
// without escapes; word itself must need none.
func (s *scanner) quoted(word string) bool {
	end := s.pos + 1 + len(word)
	if end >= len(s.data) || s.data[end] != '"' || string(s.data[s.pos+1:end]) != word {
		return false
	}
	s.pos = end + 1
	return true
}

// skip reads and discards one value of any type.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.syntax("nested deeper than %d", maxDepth)
	}
	switch s.peek() {
	case '{':
		return s.object(func([]byte) error { return s.skip(depth + 1) })
	case '[':
		return s.array(func(int) error { return s.skip(depth + 1) })
	case '"':
		_, err := s.str(&s.valBuf)
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, _, err := s.number()
	return err
}

func (s *scanner) literal(word string) error {
	if !s.consume(word) {
		return s.syntax("want %s", word)
	}
	return nil
}

// consume advances over word if it comes next.
func (s *scanner) consume(word string) bool {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

// end checks that only white space follows the document.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos < len(s.data) {
		return s.syntax("trailing data after the JSON value")
	}
	return nil
}

// str reads the string at the cursor and returns its contents. Without
// escapes they alias the input; with escapes they are unescaped into *buf
// and valid until the next use of that buffer.
func (s *scanner) str(buf *[]byte) ([]byte, error) {
	s.pos++ // the opening quote
	start := s.pos
	for len(s.data)-s.pos >= 8 && !special8(binary.LittleEndian.Uint64(s.data[s.pos:])) {
		s.pos += 8
	}
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			s.pos++
			return s.data[start : s.pos-1], nil
		}
		if c == '\\' {
			return s.unescape(start, buf)
		}
		if c < 0x20 {
			return nil, s.syntax("control character in string")
		}
		s.pos++
	}
	return nil, s.syntax("unterminated string")
}

// special8 reports whether any of the 8 bytes in x is a quote, a backslash
// or a control character, so str can step over plain text 8 bytes at a
// time. (The classic SWAR tests: a byte b is zero when (b-1) &^ b has its
// top bit set; below 0x20 when b-0x20 borrows.)
func special8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')
	backslash := x ^ (ones * '\\')
	return ((quote-ones)&^quote|(backslash-ones)&^backslash|(x-ones*0x20)&^x)&highs != 0
}

func (s *scanner) unescape(start int, buf *[]byte) ([]byte, error) {
	out := append((*buf)[:0], s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			*buf = out
			return out, nil
		case c < 0x20:
			return nil, s.syntax("control character in string")
		case c != '\\':
			out = append(out, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			break
		}
		s.pos += 2
		switch e := s.data[s.pos-1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := s.unicodeEscape()
			if err != nil {
				return nil, err
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, s.syntax("invalid escape \\%c", e)
		}
	}
	return nil, s.syntax("unterminated string")
}

// unicodeEscape reads the four hex digits after \u (and a low surrogate's
// escape after a high one). Unpaired surrogates become U+FFFD, as
// encoding/json makes them.
func (s *scanner) unicodeEscape() (rune, error) {
	r, ok := s.hex4()
	if !ok {
		return 0, s.syntax("invalid \\u escape")
	}
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
		save := s.pos
		s.pos += 2
		if r2, ok := s.hex4(); ok {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, nil
			}
		}
		s.pos = save // not a pair: the next escape is read on its own
	}
	return utf8.RuneError, nil
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.data)-s.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// number reads a number and returns its value and its text. Beyond JSON's
// grammar it reads NaN, Infinity and -Infinity.
func (s *scanner) number() (float64, []byte, error) {
	start := s.pos
	if s.pos < len(s.data) && (s.data[s.pos] == 'N' || s.data[s.pos] == 'I' || s.data[s.pos] == '-') {
		for _, word := range [...]string{"NaN", "Infinity", "-Infinity"} {
			if s.consume(word) {
				v, _ := strconv.ParseFloat(word, 64)
				return v, s.data[start:s.pos], nil
			}
		}
	}
	if !s.numberText() {
		s.pos = start
		return 0, nil, s.syntax("want a value, got %s", s.found())
	}
	text := s.data[start:s.pos]
	if v, ok := simpleDecimal(text); ok {
		return v, text, nil
	}
	// Out of range is not an error here: 1e999 reads as +Inf and is refused
	// as non-finite by Validate.
	v, _ := strconv.ParseFloat(string(text), 64)
	return v, text, nil
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// simpleDecimal converts the common case, -?digits(.digits)? with at most 15
// significant digits, as an exact integer divided by an exact power of ten:
// one correctly rounded division, the same float64 strconv returns, at a
// fraction of its cost (probabilities are 13 numbers in every event).
func simpleDecimal(text []byte) (float64, bool) {
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	var mant uint64
	digits, frac := 0, -1
	for i, c := range text {
		switch {
		case c == '.':
			frac = len(text) - i - 1
		case '0' <= c && c <= '9':
			if digits > 0 || c != '0' {
				digits++
			}
			mant = mant*10 + uint64(c-'0')
		default:
			return 0, false // an exponent
		}
	}
	if digits > 15 || frac >= len(pow10) {
		return 0, false
	}
	v := float64(mant)
	if frac > 0 {
		v /= pow10[frac]
	}
	if neg {
		v = -v
	}
	return v, true
}

// numberText advances over -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// and reports whether it matched.
func (s *scanner) numberText() bool {
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case !s.digits():
		return false
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return false
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}
