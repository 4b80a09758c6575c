package simulate

import (
	"math"
	"math/rand/v2"
)

// defectPainters draw each defect class the way it looks to a camera, at a
// random place and size. "good" and "missing_part" have no entry: a good part
// has nothing to draw and a missing part is drawn by drawBolts.
var defectPainters = map[string]func(c *canvas, p plate, r *rand.Rand){
	"scratch":       drawScratch,
	"dent":          drawDent,
	"crack":         drawCrack,
	"hole":          drawHole,
	"stain":         drawStain,
	"burr":          drawBurr,
	"rust":          drawRust,
	"chip":          drawChip,
	"warp":          drawWarp,
	"discoloration": drawDiscoloration,
}

func drawDefect(c *canvas, p plate, class string, r *rand.Rand) {
	if paint := defectPainters[class]; paint != nil {
		paint(c, p, r)
	}
}

// drawScratch is a thin bright groove with a faint shadow along one side.
func drawScratch(c *canvas, p plate, r *rand.Rand) {
	cx, cy := p.spot(r, 30)
	l := 50 + 80*r.Float64()
	a := r.Float64() * math.Pi
	dx, dy := math.Cos(a)*l/2, math.Sin(a)*l/2
	ax, ay, bx, by := cx-dx, cy-dy, cx+dx, cy+dy
	box := func(f func(x, y float64) float64, col rgb) {
		c.paint(min(ax, bx)-3, min(ay, by)-3, max(ax, bx)+3, max(ay, by)+3, col, f)
	}
	box(segment(ax+0.8, ay+1.2, bx+0.8, by+1.2, 1.2), rgb{88, 88, 92})
	box(segment(ax, ay, bx, by, 1.4), rgb{236, 236, 240})
}

// drawDent is a round depression: shaded dark towards the lamp and bright
// away from it.
func drawDent(c *canvas, p plate, r *rand.Rand) {
	cx, cy := p.spot(r, 30)
	rad := 12 + 14*r.Float64()
	a := r.Float64() * 2 * math.Pi
	ux, uy := math.Cos(a), math.Sin(a)
	c.shade(cx-rad, cy-rad, cx+rad, cy+rad, func(x, y float64) float64 {
		dx, dy := (x-cx)/rad, (y-cy)/rad
		d2 := dx*dx + dy*dy
		if d2 >= 1 {
			return 0
		}
		return -80 * (dx*ux + dy*uy) * (1 - d2)
	})
}

// drawCrack is a jagged dark line, sometimes with a branch.
func drawCrack(c *canvas, p plate, r *rand.Rand) {
	x, y := p.spot(r, 35)
	a := r.Float64() * 2 * math.Pi
	width := 1 + r.Float64()
	pts := crackPath(r, x, y, a, 7+r.IntN(5))
	drawPolyline(c, pts, width, p)
	if r.Float64() < 0.6 {
		mid := pts[len(pts)/2]
		drawPolyline(c, crackPath(r, mid[0], mid[1], a+0.9*(r.Float64()-0.5)*math.Pi, 3+r.IntN(3)), width*0.7, p)
	}
}

// crackPath is a random walk whose heading wanders, kept on the plate.
func crackPath(r *rand.Rand, x, y, a float64, n int) [][2]float64 {
	pts := [][2]float64{{x, y}}
	for range n {
		a += 0.7 * (2*r.Float64() - 1)
		step := 6 + 8*r.Float64()
		x += step * math.Cos(a)
		y += step * math.Sin(a)
		pts = append(pts, [2]float64{x, y})
	}
	return pts
}

func drawPolyline(c *canvas, pts [][2]float64, width float64, p plate) {
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		seg := segment(a[0], a[1], b[0], b[1], width)
		on := func(x, y float64) float64 {
			if !p.inside(x, y) {
				return 0
			}
			return seg(x, y)
		}
		c.paint(min(a[0], b[0])-2, min(a[1], b[1])-2, max(a[0], b[0])+2, max(a[1], b[1])+2, rgb{34, 32, 30}, on)
	}
}

// drawHole is a dark round opening with a bright machined rim.
func drawHole(c *canvas, p plate, r *rand.Rand) {
	cx, cy := p.spot(r, 30)
	rad := 5 + 9*r.Float64()
	c.paint(cx-rad-3, cy-rad-3, cx+rad+3, cy+rad+3, rgb{214, 214, 218}, disc(cx, cy, rad+1.8))
	c.paint(cx-rad-1, cy-rad-1, cx+rad+1, cy+rad+1, rgb{16, 16, 18}, disc(cx, cy, rad))
}

// drawStain is a cluster of translucent brownish patches, like dried oil.
func drawStain(c *canvas, p plate, r *rand.Rand) {
	drawPatches(c, p, r, rgb{126, 96, 46}, 3+r.IntN(4), 6, 14, 0.55, false)
}

// drawRust is a blotchy orange-brown cluster; its per-pixel mottling tells it
// apart from a smooth stain.
func drawRust(c *canvas, p plate, r *rand.Rand) {
	drawPatches(c, p, r, rgb{150, 70, 28}, 4+r.IntN(5), 5, 12, 0.75, true)
}

// drawDiscoloration is a broad, faint bluish-purple heat tint.
func drawDiscoloration(c *canvas, p plate, r *rand.Rand) {
	drawPatches(c, p, r, rgb{112, 100, 168}, 1+r.IntN(2), 25, 45, 0.45, false)
}

// drawPatches blends n Gaussian patches of col around one spot, clipped to
// the plate; mottled patches vary their opacity per pixel.
func drawPatches(c *canvas, p plate, r *rand.Rand, col rgb, n int, minSigma, maxSigma, peak float64, mottled bool) {
	cx, cy := p.spot(r, 35)
	for range n {
		bx, by := cx+18*r.NormFloat64(), cy+12*r.NormFloat64()
		sigma := minSigma + (maxSigma-minSigma)*r.Float64()
		f := blob(bx, by, sigma, peak)
		c.paint(bx-3*sigma, by-3*sigma, bx+3*sigma, by+3*sigma, col, func(x, y float64) float64 {
			if !p.inside(x, y) {
				return 0
			}
			if mottled {
				return f(x, y) * (0.3 + 0.7*r.Float64())
			}
			return f(x, y)
		})
	}
}

// drawBurr is a row of bright metal spikes sticking out over one edge.
func drawBurr(c *canvas, p plate, r *rand.Rand) {
	edge := r.IntN(4)
	along := 0.2 + 0.6*r.Float64()
	n := 3 + r.IntN(4)
	for k := range n {
		ox, oy, nx, ny := edgePoint(p, edge, along)
		t := float64(k-n/2) * (3 + 3*r.Float64())
		ox, oy = ox+t*ny, oy-t*nx // step along the edge
		l := 4 + 6*r.Float64()
		seg := segment(ox-2*nx, oy-2*ny, ox+l*nx, oy+l*ny, 2.2)
		c.paint(ox-l-3, oy-l-3, ox+l+3, oy+l+3, rgb{222, 222, 228}, seg)
	}
}

// edgePoint returns a point at fraction along one plate edge and the edge's
// outward normal.
func edgePoint(p plate, edge int, along float64) (x, y, nx, ny float64) {
	switch edge {
	case 0:
		return p.x0 + along*p.w(), p.y0, 0, -1
	case 1:
		return p.x1, p.y0 + along*p.h(), 1, 0
	case 2:
		return p.x0 + along*p.w(), p.y1, 0, 1
	default:
		return p.x0, p.y0 + along*p.h(), -1, 0
	}
}

// drawChip knocks a triangular piece out of an edge, showing the belt, with
// freshly exposed bright metal along the break.
func drawChip(c *canvas, p plate, r *rand.Rand) {
	ox, oy, nx, ny := edgePoint(p, r.IntN(4), 0.15+0.7*r.Float64())
	half := 6 + 8*r.Float64()
	depth := 8 + 10*r.Float64()
	tx, ty := -ny, nx // along the edge
	ax, ay := ox+half*tx+nx, oy+half*ty+ny
	bx, by := ox-half*tx+nx, oy-half*ty+ny
	px, py := ox-depth*nx+0.3*half*tx, oy-depth*ny+0.3*half*ty
	x0, y0 := min(ax, bx, px)-3, min(ay, by, py)-3
	x1, y1 := max(ax, bx, px)+3, max(ay, by, py)+3
	c.paint(x0, y0, x1, y1, rgb{50, 51, 54}, triangle(ax, ay, bx, by, px, py))
	c.paint(x0, y0, x1, y1, rgb{232, 232, 236}, segment(ax, ay, px, py, 1.3))
	c.paint(x0, y0, x1, y1, rgb{232, 232, 236}, segment(bx, by, px, py, 1.3))
}

// drawWarp bends the plate: light and dark ripples where the surface is no
// longer flat, fading out from the worst spot.
func drawWarp(c *canvas, p plate, r *rand.Rand) {
	cx, cy := p.spot(r, 30)
	a := r.Float64() * math.Pi
	ux, uy := math.Cos(a), math.Sin(a)
	wave := 2 * math.Pi / (35 + 35*r.Float64())
	env := blob(cx, cy, 40+30*r.Float64(), 32)
	c.shade(p.x0, p.y0, p.x1-1, p.y1-1, func(x, y float64) float64 {
		if !p.inside(x, y) {
			return 0
		}
		return env(x, y) * math.Sin(((x-cx)*ux+(y-cy)*uy)*wave)
	})
}
