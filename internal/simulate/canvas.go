package simulate

import (
	"image"
	"math"
	"math/rand/v2"
)

// canvas is a floating-point RGB picture. Scenes are composed in float so
// lighting, blending and blur do not accumulate 8-bit rounding; only the
// final develop step quantises.
type canvas struct {
	w, h int
	px   [3][]float32
}

// rgb is a colour on the 0..255 scale.
type rgb [3]float32

func newCanvas(w, h int) *canvas {
	c := &canvas{w: w, h: h}
	for ch := range c.px {
		c.px[ch] = make([]float32, w*h)
	}
	return c
}

func (c *canvas) clone() *canvas {
	d := &canvas{w: c.w, h: c.h}
	for ch := range c.px {
		d.px[ch] = append([]float32(nil), c.px[ch]...)
	}
	return d
}

// clip turns a float bounding box into the pixel range it touches, so
// painting only visits pixels near a shape.
func (c *canvas) clip(x0, y0, x1, y1 float64) (ix0, iy0, ix1, iy1 int) {
	ix0 = max(0, int(math.Floor(x0)))
	iy0 = max(0, int(math.Floor(y0)))
	ix1 = min(c.w, int(math.Ceil(x1))+1)
	iy1 = min(c.h, int(math.Ceil(y1))+1)
	return
}

// paint blends col over the box with the coverage alpha(x, y) evaluated at
// each pixel centre; alpha outside [0, 1] is clamped.
func (c *canvas) paint(x0, y0, x1, y1 float64, col rgb, alpha func(x, y float64) float64) {
	ix0, iy0, ix1, iy1 := c.clip(x0, y0, x1, y1)
	for y := iy0; y < iy1; y++ {
		for x := ix0; x < ix1; x++ {
			a := float32(clamp01(alpha(float64(x)+0.5, float64(y)+0.5)))
			if a <= 0 {
				continue
			}
			i := y*c.w + x
			for ch := range c.px {
				c.px[ch][i] += (col[ch] - c.px[ch][i]) * a
			}
		}
	}
}

// shade adds delta(x, y) to every channel over the box: relief such as dents
// and warps changes brightness, not colour.
func (c *canvas) shade(x0, y0, x1, y1 float64, delta func(x, y float64) float64) {
	ix0, iy0, ix1, iy1 := c.clip(x0, y0, x1, y1)
	for y := iy0; y < iy1; y++ {
		for x := ix0; x < ix1; x++ {
			d := float32(delta(float64(x)+0.5, float64(y)+0.5))
			i := y*c.w + x
			for ch := range c.px {
				c.px[ch][i] += d
			}
		}
	}
}

// disc is the anti-aliased coverage of a filled circle.
func disc(cx, cy, r float64) func(x, y float64) float64 {
	return func(x, y float64) float64 { return r - math.Hypot(x-cx, y-cy) + 0.5 }
}

// segment is the anti-aliased coverage of a thick line from a to b.
func segment(ax, ay, bx, by, width float64) func(x, y float64) float64 {
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	return func(x, y float64) float64 {
		t := 0.0
		if l2 > 0 {
			t = clamp01(((x-ax)*dx + (y-ay)*dy) / l2)
		}
		return width/2 - math.Hypot(x-ax-t*dx, y-ay-t*dy) + 0.5
	}
}

// blob is a soft Gaussian patch, the shape of liquids and corrosion.
func blob(cx, cy, sigma, peak float64) func(x, y float64) float64 {
	k := -1 / (2 * sigma * sigma)
	return func(x, y float64) float64 {
		dx, dy := x-cx, y-cy
		return peak * math.Exp((dx*dx+dy*dy)*k)
	}
}

// triangle is the (aliased) coverage of a filled triangle; chips are small
// enough that their jagged edge is not noticeable under sensor noise.
func triangle(ax, ay, bx, by, cx, cy float64) func(x, y float64) float64 {
	return func(x, y float64) float64 {
		d1 := cross(x, y, ax, ay, bx, by)
		d2 := cross(x, y, bx, by, cx, cy)
		d3 := cross(x, y, cx, cy, ax, ay)
		neg := d1 < 0 || d2 < 0 || d3 < 0
		pos := d1 > 0 || d2 > 0 || d3 > 0
		if neg && pos {
			return 0
		}
		return 1
	}
}

func cross(px, py, ax, ay, bx, by float64) float64 {
	return (px-bx)*(ay-by) - (ax-bx)*(py-by)
}

// boxBlur blurs every channel with a separable box of the given radius,
// clamping at the borders. Running sums keep it O(pixels) whatever the radius.
func (c *canvas) boxBlur(radius int) {
	tmp := make([]float32, c.w*c.h)
	for ch := range c.px {
		blurPass(c.px[ch], tmp, c.w, c.h, 1, c.w, radius)
		blurPass(tmp, c.px[ch], c.h, c.w, c.w, 1, radius)
	}
}

// blurPass blurs n lines of length l from src into dst; step moves along a
// line and stride between lines, so one routine serves rows and columns.
// A running sum over a border-clamped window keeps it O(l) per line.
func blurPass(src, dst []float32, l, n, step, stride, radius int) {
	norm := 1 / float32(2*radius+1)
	for line := range n {
		base := line * stride
		first, last := src[base], src[base+(l-1)*step]
		sum := float32(radius) * first
		for k := 0; k <= radius; k++ {
			sum += src[base+min(k, l-1)*step]
		}
		for k := range l {
			dst[base+k*step] = sum * norm
			in, out := last, first
			if k+radius+1 < l {
				in = src[base+(k+radius+1)*step]
			}
			if k-radius >= 0 {
				out = src[base+(k-radius)*step]
			}
			sum += in - out
		}
	}
}

// addNoise adds independent, roughly Gaussian noise per channel, like a
// sensor's read and shot noise. It is the hottest loop of rendering, so each
// sample is the sum of four 16-bit uniforms from one random word (an
// Irwin–Hall bell: mean 2, variance 1/3) rather than an exact normal draw;
// sensor noise needs the bell shape, not exact tails.
func (c *canvas) addNoise(r *rand.Rand, sigma float64) {
	k := float32(sigma * math.Sqrt(3) / 65536)
	for ch := range c.px {
		p := c.px[ch]
		for i := range p {
			u := r.Uint64()
			sum := u&0xffff + u>>16&0xffff + u>>32&0xffff + u>>48
			p[i] += (float32(sum) - 2*65536) * k
		}
	}
}

// scale multiplies each channel by its factor: exposure and colour casts.
func (c *canvas) scale(f rgb) {
	for ch := range c.px {
		p := c.px[ch]
		for i := range p {
			p[i] *= f[ch]
		}
	}
}

// rgba quantises the canvas; *image.RGBA is the JPEG encoder's fast path.
func (c *canvas) rgba() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	for i := 0; i < c.w*c.h; i++ {
		o := img.Pix[4*i : 4*i+4 : 4*i+4]
		o[0], o[1], o[2], o[3] = quant(c.px[0][i]), quant(c.px[1][i]), quant(c.px[2][i]), 255
	}
	return img
}

func quant(v float32) uint8 {
	return uint8(min(max(v+0.5, 0), 255))
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }
