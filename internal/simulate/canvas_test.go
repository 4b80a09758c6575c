package simulate

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The running-sum blur must equal the plain definition: the mean of the
// (2r+1)² window with coordinates clamped at the borders.
func TestBoxBlurMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := newCanvas(17, 11)
	for ch := range c.px {
		for i := range c.px[ch] {
			c.px[ch][i] = float32(r.IntN(256))
		}
	}
	orig := c.clone()
	const radius = 3
	c.boxBlur(radius)
	for ch := range c.px {
		for y := range c.h {
			for x := range c.w {
				want := 0.0
				for dy := -radius; dy <= radius; dy++ {
					for dx := -radius; dx <= radius; dx++ {
						xx, yy := min(max(x+dx, 0), c.w-1), min(max(y+dy, 0), c.h-1)
						want += float64(orig.px[ch][yy*c.w+xx])
					}
				}
				want /= (2*radius + 1) * (2*radius + 1)
				if got := float64(c.px[ch][y*c.w+x]); math.Abs(got-want) > 1e-3 {
					t.Fatalf("channel %d (%d,%d): %v, want %v", ch, x, y, got, want)
				}
			}
		}
	}
}
