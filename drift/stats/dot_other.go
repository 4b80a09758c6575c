//go:build !amd64

package stats

import "gonum.org/v1/gonum/floats"

// dot is Σ x[i]·y[i] over len(x); y must be at least as long.
func dot(x, y []float64) float64 { return floats.Dot(x, y[:len(x)]) }

// dot4 is x·m_k for four vectors at once; each m_k must be at least as long as x.
func dot4(x, m0, m1, m2, m3 []float64) (s0, s1, s2, s3 float64) {
	return dot(x, m0), dot(x, m1), dot(x, m2), dot(x, m3)
}
