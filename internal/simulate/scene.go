package simulate

import (
	"image"
	"math"
	"math/rand/v2"
	"slices"
)

// Picture geometry and encoding. 320×240 is large enough for the embedder's
// 224-pixel crop and small enough to render hundreds of pictures in seconds.
const (
	ImageWidth  = 320
	ImageHeight = 240
	jpegQuality = 90
)

// The two conditions a camera can be in; they are also directory names.
const (
	condNormal  = "normal"
	condShifted = "shifted"
)

// Sensor and shift parameters. The shift is deliberately strong (a dying
// lamp with a yellow cast, a dirty lens) so that a drift detector working on
// embeddings has an unambiguous signal to find.
const (
	normalNoise  = 2.5
	shiftedNoise = 3.5
	shiftBlur    = 3 // box radius; applied twice it approximates a Gaussian
)

// shiftCast darkens to ~45% and tints towards yellow.
var shiftCast = rgb{0.52, 0.45, 0.33}

// plate is the part on the conveyor, in pixel coordinates.
type plate struct{ x0, y0, x1, y1 float64 }

func (p plate) w() float64 { return p.x1 - p.x0 }
func (p plate) h() float64 { return p.y1 - p.y0 }

// inside reports whether (x, y) lies on the plate; relief is only drawn there.
func (p plate) inside(x, y float64) bool {
	return x >= p.x0 && x < p.x1 && y >= p.y0 && y < p.y1
}

// spot picks a point on the plate at least margin pixels from its edges.
func (p plate) spot(r *rand.Rand, margin float64) (x, y float64) {
	return p.x0 + margin + r.Float64()*(p.w()-2*margin), p.y0 + margin + r.Float64()*(p.h()-2*margin)
}

// renderScene draws one part as a camera sees it under normal conditions,
// before sensor noise: belt, plate, bolts, the class's defect, then the
// camera's lighting and tone. The same scene is developed into both the
// normal and the shifted picture, so the pair differs only by the shift.
func renderScene(source, class string, r *rand.Rand) *canvas {
	c := newCanvas(ImageWidth, ImageHeight)
	p := randomPlate(r)
	drawBelt(c, r)
	drawPlate(c, p, r)
	missing := 0
	if class == "missing_part" {
		missing = 1 + r.IntN(2)
	}
	drawBolts(c, p, missing, r)
	drawDefect(c, p, class, r)
	light(c, source, r)
	return c
}

// develop turns a scene into the picture a camera delivers: the shifted
// condition darkens, casts and blurs before the sensor adds its (relatively
// stronger) noise.
func develop(scene *canvas, shifted bool, r *rand.Rand) *image.RGBA {
	c := scene.clone()
	noise := normalNoise
	if shifted {
		c.scale(shiftCast)
		c.boxBlur(shiftBlur)
		c.boxBlur(shiftBlur)
		noise = shiftedNoise
	}
	c.addNoise(r, noise)
	return c.rgba()
}

// randomPlate varies the part's placement a little, as parts never sit at
// exactly the same spot on a belt.
func randomPlate(r *rand.Rand) plate {
	return plate{
		x0: 28 + 24*r.Float64(), y0: 22 + 18*r.Float64(),
		x1: ImageWidth - 28 - 24*r.Float64(), y1: ImageHeight - 22 - 18*r.Float64(),
	}
}

// drawBelt paints the dark conveyor with its slats.
func drawBelt(c *canvas, r *rand.Rand) {
	phase := r.IntN(22)
	for y := 0; y < c.h; y++ {
		for x := 0; x < c.w; x++ {
			v := float32(52 + 3*r.NormFloat64())
			if (x+phase)%22 < 2 {
				v -= 14
			}
			i := y*c.w + x
			c.px[0][i], c.px[1][i], c.px[2][i] = v, v+1, v+3
		}
	}
}

// drawPlate paints brushed metal: streaks along rows plus fine grain. The
// grain is what makes a sharp picture sharp; the shift's blur removes it.
func drawPlate(c *canvas, p plate, r *rand.Rand) {
	base := rgb{168, 171, 175}
	streak := make([]float64, c.h)
	s := 0.0
	for y := range streak {
		s = 0.7*s + 0.3*6*r.NormFloat64()
		streak[y] = s
	}
	shadow := func(x, y float64) float64 { return 0.35 } // cast shadow on the belt
	c.paint(p.x0+4, p.y0+4, p.x1+4, p.y1+4, rgb{20, 20, 22}, shadow)
	ix0, iy0, ix1, iy1 := c.clip(p.x0, p.y0, p.x1-1, p.y1-1)
	for y := iy0; y < iy1; y++ {
		for x := ix0; x < ix1; x++ {
			v := float32(streak[y] + 6*r.NormFloat64() + bevel(p, float64(x)+0.5, float64(y)+0.5))
			i := y*c.w + x
			for ch := range c.px {
				c.px[ch][i] = base[ch] + v
			}
		}
	}
}

// bevel lights the plate's top and left edges and darkens the bottom and
// right ones, which gives the part its thickness.
func bevel(p plate, x, y float64) float64 {
	switch {
	case x-p.x0 < 2.5 || y-p.y0 < 2.5:
		return 28
	case p.x1-x < 2.5 || p.y1-y < 2.5:
		return -40
	}
	return 0
}

// drawBolts puts a bolt near each corner; missing_part leaves one or two
// empty threaded holes instead.
func drawBolts(c *canvas, p plate, missing int, r *rand.Rand) {
	const inset = 15.0
	corners := [4][2]float64{{p.x0 + inset, p.y0 + inset}, {p.x1 - inset, p.y0 + inset}, {p.x0 + inset, p.y1 - inset}, {p.x1 - inset, p.y1 - inset}}
	gone := r.Perm(4)[:missing]
	for k, pt := range corners {
		x, y := pt[0], pt[1]
		if slices.Contains(gone, k) {
			c.paint(x-5, y-5, x+5, y+5, rgb{120, 120, 124}, disc(x, y, 4))
			c.paint(x-4, y-4, x+4, y+4, rgb{22, 22, 24}, disc(x, y, 2.8))
			continue
		}
		c.paint(x-8, y-8, x+8, y+8, rgb{92, 93, 96}, disc(x, y, 7))
		c.paint(x-6, y-6, x+6, y+6, rgb{196, 198, 202}, disc(x, y, 5))
		c.paint(x-3, y-3, x+1, y+1, rgb{240, 240, 242}, disc(x-1.5, y-1.5, 1.6))
	}
}

// light applies the camera's lamp (a soft falloff from a per-camera spot)
// and its colour tone, so every camera's pictures look a little different,
// as with real cameras and lamps.
func light(c *canvas, source string, r *rand.Rand) {
	sr := sourceRand(source, "light")
	lx := float64(c.w) * (0.2 + 0.6*sr.Float64())
	ly := float64(c.h) * (0.1 + 0.5*sr.Float64())
	tone := rgb{}
	for ch := range tone {
		tone[ch] = float32(0.94 + 0.12*sr.Float64())
	}
	lx += 10 * r.NormFloat64()
	ly += 10 * r.NormFloat64()
	// The Gaussian falloff is separable: exp(-(dx²+dy²)k) = exp(-dx²k)·exp(-dy²k).
	fx, fy := falloff(c.w, lx), falloff(c.h, ly)
	for y := range c.h {
		for x := range c.w {
			l := float32(0.78 + 0.32*fx[x]*fy[y])
			i := y*c.w + x
			for ch := range c.px {
				c.px[ch][i] *= l * tone[ch]
			}
		}
	}
}

// falloff is the lamp's Gaussian profile along one axis.
func falloff(n int, centre float64) []float64 {
	const sigma = 180.0
	f := make([]float64, n)
	for i := range f {
		d := float64(i) + 0.5 - centre
		f[i] = math.Exp(-d * d / (2 * sigma * sigma))
	}
	return f
}
