package embed

import (
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// SamplingConfig says which prediction events are embedded.
//
// An event is embedded when u(event_id) < p, where u is a hash of the
// event_id mapped to [0,1) and p is its inclusion probability:
//
//	p = min(1, max(Rate, Floor/N_prev) × boost)
//
// N_prev is the number of events its model × source had in the previous
// window (by event time), so a quiet source is sampled more and still gets
// about Floor embeddings per window; boost is UncertaintyBoost when the
// event's confidence is below UncertainBelow, else 1. The embedding is stored
// with sample_weight = 1/p, which keeps weighted statistics unbiased. Because
// u depends only on the event_id, a redelivered or replayed event gets the
// same decision whenever its p is the same, and raising p only adds events.
//
// MaxPerSecond then caps the sampled events with a token bucket: a hard
// ceiling on embedding work, counted as rate_limited when it bites (the
// weights do not account for it; size the limit above the normal load).
type SamplingConfig struct {
	// Rate is the base inclusion probability in [0,1].
	Rate float64
	// Window is the period over which Floor is counted; 0 disables the floor.
	Window time.Duration
	// Floor is the number of embeddings each model × source should get per
	// Window even when Rate × its volume is smaller.
	Floor int
	// UncertainBelow is the confidence under which an event is boosted.
	UncertainBelow float64
	// UncertaintyBoost (≥ 1) multiplies p of uncertain events; 1 is off.
	UncertaintyBoost float64
	// MaxPerSecond caps the rate of sampled events; 0 is no cap.
	MaxPerSecond float64
	// Burst is the token bucket's depth (at least 1 when MaxPerSecond > 0).
	Burst int
}

// Validate reports settings the sampler cannot use.
func (c SamplingConfig) Validate() error {
	switch {
	case !(c.Rate >= 0 && c.Rate <= 1):
		return fmt.Errorf("sampling: rate %v must be within [0,1]", c.Rate)
	case c.Window < 0 || c.Floor < 0:
		return fmt.Errorf("sampling: window %v and floor %d must be ≥ 0", c.Window, c.Floor)
	case c.UncertaintyBoost != 0 && !(c.UncertaintyBoost >= 1) || math.IsInf(c.UncertaintyBoost, 0):
		return fmt.Errorf("sampling: uncertainty boost %v must be ≥ 1", c.UncertaintyBoost)
	case !(c.UncertainBelow >= 0 && c.UncertainBelow <= 1):
		return fmt.Errorf("sampling: uncertain_below %v must be within [0,1]", c.UncertainBelow)
	case !(c.MaxPerSecond >= 0) || c.Burst < 0:
		return fmt.Errorf("sampling: max_per_second %v and burst %d must be ≥ 0", c.MaxPerSecond, c.Burst)
	}
	return nil
}

// maxScopes bounds the sampler's per-scope state: sources come from events,
// i.e. from outside, and must not grow memory without limit.
const maxScopes = 10000

// Sampler decides which events to embed. It is safe for concurrent use.
type Sampler struct {
	cfg     SamplingConfig
	metrics *StageMetrics

	mu     sync.Mutex
	scopes map[scopeKey]*scopeCounts
	bucket tokenBucket
}

type scopeKey struct{ model, source string }

// scopeCounts holds the event counts of the last two windows seen.
type scopeCounts struct {
	win       int64 // index of the newest window seen
	cur, prev int   // events in win and in win-1
	prevKnown bool
}

// NewSampler returns a sampler for cfg; m may be nil for no metrics.
func NewSampler(cfg SamplingConfig, m *StageMetrics) *Sampler {
	if m == nil {
		m = NewStageMetrics(nil)
	}
	if cfg.UncertaintyBoost < 1 {
		cfg.UncertaintyBoost = 1
	}
	s := &Sampler{cfg: cfg, metrics: m, scopes: map[scopeKey]*scopeCounts{}}
	if cfg.MaxPerSecond > 0 {
		s.bucket = tokenBucket{rate: cfg.MaxPerSecond, burst: float64(max(cfg.Burst, 1))}
		s.bucket.tokens = s.bucket.burst
	}
	return s
}

// Decide reports whether p is embedded and, if so, its sample weight 1/p.
// now drives the rate limit only; windows follow the event's timestamp.
func (s *Sampler) Decide(p *event.Prediction, now time.Time) (weight float64, ok bool) {
	prob := s.probability(p)
	if prob < 1 && unitHash(p.EventID) >= prob {
		s.metrics.decisions.WithLabelValues("unsampled").Inc()
		return 0, false
	}
	if s.cfg.MaxPerSecond > 0 {
		s.mu.Lock()
		allowed := s.bucket.allow(now)
		s.mu.Unlock()
		if !allowed {
			s.metrics.decisions.WithLabelValues("rate_limited").Inc()
			return 0, false
		}
	}
	s.metrics.decisions.WithLabelValues("sampled").Inc()
	return 1 / prob, true
}

// Skip reports whether an event with this id is certainly not sampled,
// decided from the Kafka key (the event_id by contract) before the JSON is
// parsed. That is only possible without a floor, which must count every
// event of a source.
func (s *Sampler) Skip(id []byte) bool {
	if len(id) == 0 || (s.cfg.Window > 0 && s.cfg.Floor > 0) {
		return false
	}
	maxP := min(1, s.cfg.Rate*s.cfg.UncertaintyBoost)
	if maxP < 1 && unitHash(string(id)) >= maxP {
		s.metrics.decisions.WithLabelValues("unsampled").Inc()
		return true
	}
	return false
}

// probability counts p in its scope's window and returns its inclusion
// probability.
func (s *Sampler) probability(p *event.Prediction) float64 {
	prob := s.cfg.Rate
	if s.cfg.Window > 0 && s.cfg.Floor > 0 {
		if n, known := s.count(p); known && n > 0 {
			prob = max(prob, float64(s.cfg.Floor)/float64(n))
		}
	}
	if s.cfg.UncertaintyBoost > 1 && p.Scores().Confidence < s.cfg.UncertainBelow {
		prob *= s.cfg.UncertaintyBoost
	}
	return min(prob, 1)
}

// count adds p to its window and returns the size of the previous window,
// and whether that window was seen at all (a source's first window, or one
// after a gap, has no basis for a floor and samples at Rate).
func (s *Sampler) count(p *event.Prediction) (int, bool) {
	w := p.TS.UnixNano() / int64(s.cfg.Window)
	k := scopeKey{p.Model, p.Source}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.scopes[k]
	if c == nil {
		if len(s.scopes) >= maxScopes {
			clear(s.scopes)
		}
		c = &scopeCounts{win: w}
		s.scopes[k] = c
	}
	switch {
	case w == c.win:
		c.cur++
		return c.prev, c.prevKnown
	case w == c.win+1:
		c.win, c.prev, c.prevKnown, c.cur = w, c.cur, true, 1
		return c.prev, true
	case w > c.win:
		c.win, c.prev, c.prevKnown, c.cur = w, 0, false, 1
		return 0, false
	case w == c.win-1:
		// A late event of the previous window (another partition lagging).
		c.prev++
		return 0, false
	}
	return 0, false
}

// unitHash maps id to [0,1): FNV-1a, then MurmurHash3's 64-bit finaliser.
// FNV-1a alone mixes its last bytes poorly into the high bits, so sequential
// ids ("ev-1", "ev-2", …) would get correlated decisions; the finaliser
// spreads every input bit over the whole word.
func unitHash(id string) float64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53) // 53 bits: exact in float64, always < 1
}

// Sampled reports whether the event with this id is in the sample at rate,
// ignoring floors, boosts and limits: the decision of a Sampler whose only
// setting is Rate.
func Sampled(eventID string, rate float64) bool {
	return rate >= 1 || unitHash(eventID) < rate
}

// tokenBucket allows rate events per second on average, burst at once.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) allow(now time.Time) bool {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
