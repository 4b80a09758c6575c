package stats

import "testing"

// The portable kernel too, on a machine that would pick AVX2+FMA.
func TestDot4FallbackMatchesNaive(t *testing.T) {
	defer func(saved bool) { haveFMA = saved }(haveFMA)
	haveFMA = false
	testDot4MatchesNaive(t)
}
