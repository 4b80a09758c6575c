package simulate

import (
	"hash/fnv"
	"math/rand/v2"
)

// Classes are the simulated classifier's 12 defect classes, in the order the
// classifier reports them. "good" comes first because it is by far the most
// common outcome on a production line. Treat the slice as read-only.
var Classes = []string{
	"good", "scratch", "dent", "crack", "hole", "stain",
	"burr", "rust", "chip", "warp", "missing_part", "discoloration",
}

// goodShare is the fraction of parts without defect. Real lines see far more
// good parts than defects; a majority class also makes a shift in the
// predicted-class mix easy to see.
const goodShare = 0.55

// shiftConfusions are the classes the classifier wrongly leans towards once
// the lighting turns dark and yellowish: a dim, colour-cast plate looks
// stained, discoloured or rusty. Weights are relative.
var shiftConfusions = []struct {
	class  string
	weight float64
}{{"stain", 0.45}, {"discoloration", 0.35}, {"rust", 0.20}}

// sourceHash derives stable per-camera traits (class mix, tone, light
// position) from the camera's name, so a camera looks and behaves the same
// whatever the seed or the order of the sources.
func sourceHash(source, purpose string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(source))
	return h.Sum64()
}

// sourceRand is a random stream fixed by a camera's name and a purpose.
func sourceRand(source, purpose string) *rand.Rand {
	return rand.New(rand.NewPCG(sourceHash(source, purpose), 0x5eed))
}

// classMix returns cumulative weights over Classes for one camera: "good"
// dominates and each defect's share varies by up to ±40% between cameras, as
// different stations see different failure modes. The variation is mild so
// that only a domain shift, not the mix itself, makes a camera stand out.
func classMix(source string, classes []string) []float64 {
	r := sourceRand(source, "class-mix")
	w := make([]float64, len(classes))
	defects := 0.0
	for i := 1; i < len(classes); i++ {
		w[i] = 0.6 + 0.8*r.Float64()
		defects += w[i]
	}
	w[0] = goodShare
	for i := 1; i < len(classes); i++ {
		w[i] *= (1 - goodShare) / defects
	}
	return cumulative(w)
}

func cumulative(w []float64) []float64 {
	cum := make([]float64, len(w))
	total := 0.0
	for i, v := range w {
		total += v
		cum[i] = total
	}
	return cum
}

// pick draws an index from cumulative weights.
func pick(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

func classIndex(classes []string, name string) int {
	for i, c := range classes {
		if c == name {
			return i
		}
	}
	return -1
}
