//go:build !amd64

package stats

import "gonum.org/v1/gonum/floats"

// dot4 is x·m_k for four vectors at once; each m_k must be at least as long as x.
func dot4(x, m0, m1, m2, m3 []float64) (s0, s1, s2, s3 float64) {
	n := len(x)
	return floats.Dot(x, m0[:n]), floats.Dot(x, m1[:n]), floats.Dot(x, m2[:n]), floats.Dot(x, m3[:n])
}
