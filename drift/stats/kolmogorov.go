package stats

import "math"

// kolmogorovSF is P(D_n ≥ x) for the two-sided one-sample Kolmogorov
// statistic D_n, i.e. scipy.stats.kstwo.sf(x, n). No single method is both
// fast and accurate over the whole (n, x) plane, so it dispatches the way
// Simard & L'Ecuyer (2011) recommend and scipy 1.10 implements:
// closed forms at the extremes (Ruben & Gambino 1982), the exact Durbin
// matrix (Marsaglia, Tsang & Wang 2003) where it is cheap, the Pelz–Good
// (1976) asymptotic series for large n and small x, and twice the
// one-sided Smirnov tail where the two-sided tails cannot overlap or their
// overlap is negligible.
//
// One deliberate difference: where scipy uses Pomeranz's recursion (n ≤
// 140, 0.754693 < n·x² ≤ 4) this uses the Durbin matrix too. Both are
// exact, and there the matrix is at most 47×47.
func kolmogorovSF(n int, x float64) float64 {
	fn := float64(n)
	t := fn * x
	switch {
	case x >= 1:
		return 0
	case t <= 0.5:
		return 1
	case t <= 1:
		return 1 - rubenGambinoLowerCDF(n, t)
	case t >= fn-1:
		return clamp01(2 * math.Pow(1-x, fn))
	case x >= 0.5:
		return clamp01(2 * smirnovSF(n, x))
	}
	nx2 := t * x
	if n <= 140 {
		if nx2 <= 4 {
			return clamp01(1 - durbinCDF(n, x))
		}
		return clamp01(2 * smirnovSF(n, x))
	}
	switch {
	case nx2 >= 370:
		return 0
	case nx2 >= 2.2:
		return clamp01(2 * smirnovSF(n, x))
	case n <= 100000 && fn*math.Pow(x, 1.5) <= 1.4:
		return clamp01(1 - durbinCDF(n, x))
	}
	return clamp01(1 - pelzGoodCDF(n, x))
}

func clamp01(p float64) float64 { return min(max(p, 0), 1) }

// rubenGambinoLowerCDF is the exact CDF n!/nⁿ·(2t−1)ⁿ valid for
// 1/2 ≤ t = n·x ≤ 1. For large n the factorial ratio is formed in log
// space so that neither n! nor nⁿ overflows.
func rubenGambinoLowerCDF(n int, t float64) float64 {
	if n <= 140 {
		p := 1.0
		for i := 1; i <= n; i++ {
			p *= float64(i) / float64(n) * (2*t - 1)
		}
		return p
	}
	fn := float64(n)
	return math.Exp(logFactorialOverPower(fn) + fn*math.Log(2*t-1))
}

// logFactorialOverPower is log(n!/nⁿ) from Stirling's series with n·log n
// removed analytically, which lgamma(n+1) − n·log n would lose to
// cancellation.
func logFactorialOverPower(n float64) float64 {
	// Bernoulli terms B_2k / (2k(2k−1)) for k = 1..4.
	r := 1 / n
	r2 := r * r
	series := r * (1.0/12 + r2*(-1.0/360+r2*(1.0/1260+r2*(-1.0/1680))))
	return 0.5*math.Log(2*math.Pi*n) - n + series
}

// smirnovSF is the one-sided tail P(D_n⁺ ≥ x), from the Smirnov /
// Birnbaum–Tingey sum
//
//	x · Σ_{j=0}^{⌊n(1−x)⌋} t_j,   t_j = C(n,j) (x + j/n)^(j−1) (1 − x − j/n)^(n−j).
//
// Every term is positive, so there is no cancellation to fear; the danger
// is that t_0 = (1−x)ⁿ/x underflows while the sum does not, and that
// forming each term from logs of size ~n loses ~n·ε to rounding. So each
// term is reached from the previous one by a ratio of O(1) factors, and
// the running term and sum carry their own binary exponent.
func smirnovSF(n int, x float64) float64 {
	fn := float64(n)
	nx := fn * x
	term := scaledFromLog(fn*math.Log1p(-x) - math.Log(x))
	sum := term
	for j := 1; j <= int(math.Floor(fn-nx)); j++ {
		restPrev := fn - nx - float64(j-1) // n·(1 − x − (j−1)/n)
		if restPrev <= 1 {
			break // this and every later term has a zero factor
		}
		jf := float64(j)
		growth := (jf-2)*math.Log1p(1/(nx+jf-1)) + (fn-jf)*math.Log1p(-1/restPrev)
		term.mul((fn - jf + 1) / jf * (nx + jf) / restPrev * math.Exp(growth))
		sum.add(term)
	}
	return x * sum.value()
}

// scaled is mant·2^exp, for sums whose terms would underflow a float64.
type scaled struct {
	mant float64
	exp  int
}

func scaledFromLog(logv float64) scaled {
	k := math.Floor(logv / math.Ln2)
	s := scaled{mant: math.Exp(logv - k*math.Ln2), exp: int(k)}
	s.normalize()
	return s
}

func (s *scaled) normalize() {
	m, e := math.Frexp(s.mant)
	s.mant, s.exp = m, s.exp+e
}

func (s *scaled) mul(f float64) {
	s.mant *= f
	s.normalize()
}

func (s *scaled) add(o scaled) {
	switch {
	case o.mant == 0:
		return
	case s.mant == 0:
		*s = o
		return
	case o.exp > s.exp:
		s.mant = math.Ldexp(s.mant, s.exp-o.exp)
		s.exp = o.exp
	}
	s.mant += math.Ldexp(o.mant, o.exp-s.exp)
	s.normalize()
}

func (s scaled) value() float64 { return math.Ldexp(s.mant, s.exp) }

// Scaling bounds for the Durbin matrix power: entries grow like eⁿ before
// the final n!/nⁿ factor, so the exponent is tracked separately.
const (
	durbinBig   = 0x1p128
	durbinSmall = 0x1p-128
	durbinShift = 128
)

// durbinCDF is the exact P(D_n < x) from Durbin's matrix formula as
// organised by Marsaglia, Tsang & Wang (2003): with n·x = k − h,
// 0 ≤ h < 1, it is n!/nⁿ times the (k,k) element of Hⁿ for a
// (2k−1)×(2k−1) matrix H. The cost is O(k³ log n), hence its use only
// where n·x is small.
func durbinCDF(n int, x float64) float64 {
	nx := float64(n) * x
	k := int(math.Ceil(nx))
	m := 2*k - 1
	hp, exp := matPow(durbinMatrix(m, float64(k)-nx), m, n, k-1)
	p := hp[(k-1)*m+k-1]
	for i := 1; i <= n; i++ {
		p *= float64(i) / float64(n)
		if p < durbinSmall {
			p *= durbinBig
			exp -= durbinShift
		}
	}
	return math.Ldexp(p, exp)
}

// durbinMatrix builds H: H[i][j] = 1/(i−j+1)! on and below the
// superdiagonal, with the first column and last row reduced by h-powers
// to account for the fractional part of n·x.
func durbinMatrix(m int, h float64) []float64 {
	hm := make([]float64, m*m)
	for i := range m {
		for j := range m {
			if d := i - j + 1; d >= 0 {
				hm[i*m+j] = 1 / math.Gamma(float64(d+1))
			}
		}
	}
	for i := range m {
		hm[i*m] -= math.Pow(h, float64(i+1)) / math.Gamma(float64(i+2))
		hm[(m-1)*m+i] -= math.Pow(h, float64(m-i)) / math.Gamma(float64(m-i+1))
	}
	if 2*h-1 > 0 {
		hm[(m-1)*m] += math.Pow(2*h-1, float64(m)) / math.Gamma(float64(m+1))
	}
	return hm
}

// matPow returns Hⁿ together with a binary exponent, rescaling whenever the
// watched diagonal element c grows past durbinBig.
func matPow(h []float64, m, n, c int) ([]float64, int) {
	result := make([]float64, m*m)
	for i := range m {
		result[i*m+i] = 1
	}
	exp, hExp := 0, 0
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			result = matMul(result, h, m)
			exp += hExp
		}
		h = matMul(h, h, m)
		hExp *= 2
		if math.Abs(h[c*m+c]) > durbinBig {
			for i := range h {
				h[i] *= durbinSmall
			}
			hExp += durbinShift
		}
	}
	return result, exp
}

func matMul(a, b []float64, m int) []float64 {
	out := make([]float64, m*m)
	for i := range m {
		row := out[i*m : (i+1)*m]
		for l := range m {
			ail := a[i*m+l]
			if ail == 0 {
				continue
			}
			for j, blj := range b[l*m : (l+1)*m] {
				row[j] += ail * blj
			}
		}
	}
	return out
}

// pelzGoodCDF is the Pelz–Good (1976) approximation to P(D_n ≤ x): the
// Li-Chien/Korolyuk expansion K₀ + K₁/√n + K₂/n + K₃/n^(3/2) in
// z = x√n, rewritten through Jacobi theta identities so the series
// converge quickly for small z. It is the large-n workhorse.
func pelzGoodCDF(n int, x float64) float64 {
	z := math.Sqrt(float64(n)) * x
	z2 := z * z
	logQ := -math.Pi * math.Pi / (8 * z2)
	if logQ < -708 {
		return 0
	}
	k := pelzGoodOddTerms(z, math.Exp(logQ), int(math.Ceil(16*z/math.Pi)))
	pelzGoodEvenTerms(&k, z, int(math.Ceil(16*z/math.Pi)))
	sqrtN := math.Sqrt(float64(n))
	return k[0] + k[1]/sqrtN + k[2]/float64(n) + k[3]/(float64(n)*sqrtN)
}

// pelzGoodOddTerms sums the four series over odd m = 2k−1 of
// c_i(m)·q^(m²), q = exp(−π²/(8z²)), by Horner's rule in q⁸ᵏ.
func pelzGoodOddTerms(z, q float64, maxK int) [4]float64 {
	pi2, pi4, pi6 := math.Pi*math.Pi, math.Pow(math.Pi, 4), math.Pow(math.Pi, 6)
	z2, z4, z6 := z*z, math.Pow(z, 4), math.Pow(z, 6)
	var s [4]float64
	for k := maxK; k >= 1; k-- {
		m2 := float64((2*k - 1) * (2*k - 1))
		m4 := m2 * m2
		qp := math.Pow(q, float64(8*k))
		c := [4]float64{
			1,
			pi2*m2/4 - z2,
			6*z6 + 2*z4 + (2*z4-5*z2)*pi2*m2/4 + pi4*(1-2*z2)*m4/16,
			-30*z6 - 90*z6*z2 + pi2*(135*z4-96*z6)*m2/4 +
				pi4*(212*z4-60*z2)*m4/16 + pi6*(5-30*z2)*m4*m2/64,
		}
		for i := range s {
			s[i] = s[i]*qp + c[i]
		}
	}
	norm := [4]float64{z, 6 * z4, 72 * z6 * z, 6480 * z6 * z4}
	for i := range s {
		s[i] *= q * math.Sqrt(2*math.Pi) / norm[i]
	}
	return s
}

// pelzGoodEvenTerms adds the parts of K₂ and K₃ that run over all integers
// k with weight exp(−π²k²/(2z²)); they do not alternate, so direct summation
// is accurate.
func pelzGoodEvenTerms(s *[4]float64, z float64, maxK int) {
	pi2 := math.Pi * math.Pi
	q := math.Exp(-pi2 / (2 * z * z))
	var k2, k3 float64
	for k := maxK; k >= 1; k-- {
		kk := float64(k * k)
		w := kk * math.Pow(q, kk)
		k2 += w
		k3 += (3*z*z - pi2*kk) * w
	}
	root := math.Sqrt(2 * math.Pi)
	s[2] += k2 * pi2 * root / (-36 * z * z * z)
	s[3] += k3 * pi2 * root / (216 * math.Pow(z, 6))
}
