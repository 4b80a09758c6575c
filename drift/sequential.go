package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
)

// TestSequential is the report row of the sequential mode.
const TestSequential = "sequential_cusum"

// cusumDrift is k in S ← max(0, S + x − k): with x = −ln p, which is
// Exp(1) for a valid p-value without drift, the increments then average −1
// under the null, while a single p of 1e-5 adds 9.5.
const cusumDrift = 2.0

// CUSUMThreshold returns the alarm threshold h at which a CUSUM of
// increments −ln U − cusumDrift (U uniform: p-values without drift) takes
// on average arl steps to cross h. It is found by bisection over Monte
// Carlo run lengths with a fixed seed, so it is reproducible. Conservative
// tests (KS with ties, Benjamini–Hochberg) give stochastically larger
// p-values, so their real run length between false alarms is longer.
func CUSUMThreshold(arl int) float64 {
	lo, hi := 0.0, 4*math.Log(float64(arl))+10
	for range 30 {
		mid := (lo + hi) / 2
		if meanRunLength(mid, arl) < float64(arl) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// meanRunLength simulates null CUSUM paths; each is cut at 20·arl steps so a
// far too high h cannot loop for long (it is then correctly "too high").
func meanRunLength(h float64, arl int) float64 {
	const paths = 400
	rng := rand.New(rand.NewPCG(0xc05, uint64(arl)))
	limit := 20 * arl
	var total float64
	for range paths {
		s, n := 0.0, 0
		for n < limit {
			n++
			s = max(0, s-math.Log(1-rng.Float64())-cusumDrift)
			if s > h {
				break
			}
		}
		total += float64(n)
	}
	return total / paths
}

// sequential keeps the CUSUM of every scope × test across runs. The state
// lives in memory: a restart starts from zero, which can only delay an
// alarm, never cause one.
type sequential struct {
	mu sync.Mutex
	h  float64
	s  map[Scope]map[string]float64
}

func newSequential(arl int) *sequential {
	if arl <= 0 {
		return nil
	}
	return &sequential{h: CUSUMThreshold(arl), s: map[Scope]map[string]float64{}}
}

// update folds one run of a scope into its CUSUMs and returns the
// sequential report. A test adds −ln p only when its effect reaches the
// floor (so trivial differences never accumulate), and nothing when it had
// insufficient data; a test whose CUSUM alarms is reset.
func (q *sequential) update(base Report, results []Report) Report {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.s[base.Scope]
	if st == nil {
		st = map[string]float64{}
		q.s[base.Scope] = st
	}
	r := base
	r.Result = Result{Test: TestSequential, Status: StatusOK, MinEffect: q.h, PValue: math.NaN(), Alpha: base.Alpha}
	var parts, fired []string
	for _, res := range results {
		if res.Status == StatusInsufficient {
			continue
		}
		x := 0.0
		if res.Effect >= res.MinEffect && res.PValue > 0 {
			x = -math.Log(res.PValue)
		} else if res.Effect >= res.MinEffect {
			x = 745 // p underflowed to 0: -ln of the smallest float64
		}
		s := max(0, st[res.Test]+x-cusumDrift)
		r.Statistic = max(r.Statistic, s)
		r.NRef, r.NCur = max(r.NRef, res.NRef), max(r.NCur, res.NCur)
		parts = append(parts, fmt.Sprintf("%s S=%.2f", res.Test, s))
		if s > q.h {
			fired = append(fired, res.Test)
			s = 0
		}
		st[res.Test] = s
	}
	r.Effect = r.Statistic
	slices.Sort(fired)
	if len(fired) > 0 {
		r.Status = StatusDrift
		r.Explain = append(r.Explain, Explanation{Kind: "test", Item: strings.Join(fired, ","), Value: r.Statistic, PValue: math.NaN(),
			Detail: "CUSUM crossed its threshold"})
	}
	r.Detail = fmt.Sprintf("CUSUM of -ln p per test, k=%g, h=%.2f; %s", cusumDrift, q.h, strings.Join(parts, ", "))
	if len(fired) > 0 {
		r.Detail += "; fired (and reset): " + strings.Join(fired, ", ")
	}
	return r
}
