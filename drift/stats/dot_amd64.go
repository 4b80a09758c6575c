package stats

import (
	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/floats"
)

// haveFMA selects the AVX2+FMA kernel. Dot products are most of the cost of
// the exact MMD test (the kernel matrix and every permutation), and the
// 4-wide fused multiply-add, one load of x for four products, runs them
// several times as fast as gonum's SSE2 kernel.
var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dot4 is x·m_k for four vectors at once; each m_k must be at least as
// long as x. Each result depends on x and its own m_k alone, never on the
// vectors it shares the call with, so grouping cannot change a statistic.
func dot4(x, m0, m1, m2, m3 []float64) (s0, s1, s2, s3 float64) {
	n := len(x)
	m0, m1, m2, m3 = m0[:n], m1[:n], m2[:n], m3[:n]
	if haveFMA {
		return dot4FMA(x, m0, m1, m2, m3)
	}
	return floats.Dot(x, m0), floats.Dot(x, m1), floats.Dot(x, m2), floats.Dot(x, m3)
}

//go:noescape
func dot4FMA(x, m0, m1, m2, m3 []float64) (s0, s1, s2, s3 float64)
