package event

import (
	"sync"
	"time"
)

// Limits are the operator-set bounds an event must respect on top of the
// contract. They guard storage and memory against absurd producers.
type Limits struct {
	// MaxBytes bounds one encoded event (at most MaxEventBytes).
	MaxBytes int `yaml:"max_event_bytes"`
	// MaxClasses bounds probs/top_k entries; MaxBoxes bounds boxes.
	MaxClasses int `yaml:"max_classes"`
	MaxBoxes   int `yaml:"max_boxes"`
	// MaxFuture refuses events stamped further ahead of the consumer's
	// clock; MaxAge refuses events older than this. 0 disables either.
	MaxFuture time.Duration `yaml:"max_future"`
	MaxAge    time.Duration `yaml:"max_age"`
}

// DefaultLimits are generous for any real classifier or detector.
func DefaultLimits() Limits {
	return Limits{MaxBytes: MaxEventBytes, MaxClasses: 1000, MaxBoxes: 1000, MaxFuture: time.Hour, MaxAge: 90 * 24 * time.Hour}
}

// Decoder decodes events under operator limits. The zero Decoder applies
// only the contract's absolute bounds.
type Decoder struct {
	Limits Limits
	// Now is the clock for MaxFuture and MaxAge; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	state *decodeState
}

// Prediction decodes, validates and checks one prediction against d.Limits.
func (d *Decoder) Prediction(data []byte) (Prediction, error) {
	if d.Limits.MaxBytes > 0 && len(data) > d.Limits.MaxBytes {
		return Prediction{}, invalid(ReasonTooLarge, "event is %d bytes, limit %d", len(data), d.Limits.MaxBytes)
	}
	d.mu.Lock()
	if d.state == nil {
		d.state = &decodeState{intern: make(interner)}
	}
	p, err := decodePrediction(data, d.state)
	d.mu.Unlock()
	if err != nil {
		return Prediction{}, err
	}
	if n := max(len(p.Probs), len(p.TopK)); d.Limits.MaxClasses > 0 && n > d.Limits.MaxClasses {
		return Prediction{}, invalid(ReasonBadProbabilities, "%d classes, limit %d", n, d.Limits.MaxClasses)
	}
	if d.Limits.MaxBoxes > 0 && len(p.Boxes) > d.Limits.MaxBoxes {
		return Prediction{}, invalid(ReasonBadBoxes, "%d boxes, limit %d", len(p.Boxes), d.Limits.MaxBoxes)
	}
	return p, d.checkWindow(p.TS)
}

// Label decodes, validates and checks one label against d.Limits. Labels
// may come long after their prediction, so only MaxFuture applies.
func (d *Decoder) Label(data []byte) (Label, error) {
	if d.Limits.MaxBytes > 0 && len(data) > d.Limits.MaxBytes {
		return Label{}, invalid(ReasonTooLarge, "event is %d bytes, limit %d", len(data), d.Limits.MaxBytes)
	}
	l, err := DecodeLabel(data)
	if err != nil {
		return Label{}, err
	}
	if d.Limits.MaxBoxes > 0 && len(l.Boxes) > d.Limits.MaxBoxes {
		return Label{}, invalid(ReasonBadBoxes, "%d boxes, limit %d", len(l.Boxes), d.Limits.MaxBoxes)
	}
	if f := d.Limits.MaxFuture; f > 0 && l.TS.After(d.now().Add(f)) {
		return Label{}, invalid(ReasonBadTimestamp, "ts %s is more than %s in the future", l.TS.Format(time.RFC3339), f)
	}
	return l, nil
}

func (d *Decoder) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Decoder) checkWindow(ts time.Time) error {
	now := d.now()
	if f := d.Limits.MaxFuture; f > 0 && ts.After(now.Add(f)) {
		return invalid(ReasonBadTimestamp, "ts %s is more than %s in the future", ts.Format(time.RFC3339), f)
	}
	if a := d.Limits.MaxAge; a > 0 && ts.Before(now.Add(-a)) {
		return invalid(ReasonBadTimestamp, "ts %s is older than %s", ts.Format(time.RFC3339), a)
	}
	return nil
}
