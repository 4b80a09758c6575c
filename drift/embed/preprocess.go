package embed

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"
)

// PreprocessConfig describes the Hugging Face DINOv2 (BitImageProcessor) input
// pipeline: resize the shortest edge, center-crop a square, scale to [0,1] and
// normalise each channel.
type PreprocessConfig struct {
	// ResizeShortest is the length the image's shorter edge is resized to.
	ResizeShortest int
	// Crop is the side of the square center crop, which must equal the
	// model's InputSize.
	Crop int
	// Mean and Std normalise channel c as (x/255 - Mean[c]) / Std[c].
	Mean, Std [3]float32
}

// DefaultPreprocess returns the settings of facebook/dinov2-* processors:
// shortest edge 256, crop 224, ImageNet mean and std.
func DefaultPreprocess() PreprocessConfig {
	return PreprocessConfig{
		ResizeShortest: 256,
		Crop:           224,
		Mean:           [3]float32{0.485, 0.456, 0.406},
		Std:            [3]float32{0.229, 0.224, 0.225},
	}
}

// maxPreprocessSide bounds the config so a typo cannot make Preprocess
// allocate gigabytes.
const maxPreprocessSide = 8192

// Validate reports whether the config can be used by Preprocess.
func (c PreprocessConfig) Validate() error {
	if c.ResizeShortest <= 0 || c.ResizeShortest > maxPreprocessSide {
		return fmt.Errorf("preprocess: ResizeShortest %d out of range (1..%d)", c.ResizeShortest, maxPreprocessSide)
	}
	if c.Crop <= 0 || c.Crop > maxPreprocessSide {
		return fmt.Errorf("preprocess: Crop %d out of range (1..%d)", c.Crop, maxPreprocessSide)
	}
	for i, s := range c.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("preprocess: Std[%d] = %v must be positive and finite", i, s)
		}
	}
	for i, m := range c.Mean {
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			return fmt.Errorf("preprocess: Mean[%d] = %v must be finite", i, m)
		}
	}
	return nil
}

// Preprocess converts img into the model's input: CHW float32, 3*Crop*Crop
// values, written into dst when it has the capacity (so callers can reuse one
// buffer per batch slot) and returned.
//
// The result reproduces the Hugging Face processor run on a PIL image:
// PIL's antialiased bicubic resize of the shortest edge (including its 8-bit
// fixed-point arithmetic and rounding to uint8 after each pass), a center
// crop at ((w-Crop)//2, (h-Crop)//2), x/255 and normalisation in float32. An
// identical RGB input therefore gives identical values; decoded JPEGs still
// differ slightly because Go and libjpeg upsample chroma differently.
//
// Only the source rows and columns that feed the surviving crop are touched,
// which is what makes it fast. Alpha is dropped, as PIL's convert("RGB")
// does. Preprocess panics if cfg is invalid (see Validate): a bad config is a
// programming error, not a property of the image.
func Preprocess(img image.Image, cfg PreprocessConfig, dst []float32) []float32 {
	if err := cfg.Validate(); err != nil {
		panic("embed: " + err.Error())
	}
	n := 3 * cfg.Crop * cfg.Crop
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	lut := normLUT(cfg)
	b := img.Bounds()
	if b.Empty() {
		fillZero(dst, cfg.Crop, &lut)
		return dst
	}
	rw, rh := resizedSize(b.Dx(), b.Dy(), cfg.ResizeShortest)
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.x.plan(b.Dx(), rw, cfg.Crop)
	s.y.plan(b.Dy(), rh, cfg.Crop)
	s.horizontal(rowReader(img), cfg.Crop)
	s.vertical(cfg.Crop, &lut, dst)
	return dst
}

// resizedSize mirrors transformers' get_resize_output_image_size with
// default_to_square=False: the long edge is int(short_target*long/short).
func resizedSize(w, h, shortest int) (int, int) {
	if w <= h {
		return shortest, int(float64(shortest*h) / float64(w))
	}
	return int(float64(shortest*w) / float64(h)), shortest
}

// normLUT maps every uint8 value to its normalised float for each channel,
// computed in the same precision as transformers' rescale (float64 multiply,
// cast to float32) and normalize (float32 subtract and divide).
func normLUT(cfg PreprocessConfig) [3][256]float32 {
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			x := float32(float64(v) * (1.0 / 255))
			lut[c][v] = (x - cfg.Mean[c]) / cfg.Std[c]
		}
	}
	return lut
}

func fillZero(dst []float32, crop int, lut *[3][256]float32) {
	plane := crop * crop
	for c := range 3 {
		for i := range plane {
			dst[c*plane+i] = lut[c][0]
		}
	}
}

// precisionBits is PIL's fixed-point precision for 8-bit resampling
// (32 - 8 - 2 in Resample.c); matching it makes results bit-identical.
const precisionBits = 22

// axisPlan holds the filter taps, on one axis, of just the output pixels that
// survive the center crop.
type axisPlan struct {
	first, last int     // source range [first, last) read by any tap
	start       []int   // per output pixel: first source index, relative to first
	count       []int   // per output pixel: number of taps (0 for crop padding)
	weights     []int32 // per output pixel: ksize fixed-point weights
	ksize       int
}

// plan computes PIL's precompute_coeffs + normalize_coeffs_8bpc for a resize
// of inSize to outSize, restricted to the crop window. Output pixel o of the
// crop is resized pixel o+off with off = floor((outSize-crop)/2), which is
// transformers' center_crop including its zero padding when crop > outSize
// (padding pixels get no taps and therefore the value 0).
func (p *axisPlan) plan(inSize, outSize, crop int) {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := 2 * filterScale // bicubic support is 2
	p.ksize = int(math.Ceil(support))*2 + 1
	p.start = resize(p.start, crop)
	p.count = resize(p.count, crop)
	p.weights = resize(p.weights, crop*p.ksize)
	prek := make([]float64, p.ksize) // ≤ 2*ceil(2*inSize/outSize)+1, tiny
	off := floorDiv(outSize-crop, 2)
	p.first, p.last = inSize, 0
	for o := range crop {
		r := o + off
		p.start[o], p.count[o] = 0, 0
		if r < 0 || r >= outSize {
			continue
		}
		xmin, n := tapsFor(r, scale, filterScale, support, inSize, prek)
		p.start[o], p.count[o] = xmin, n
		quantize(p.weights[o*p.ksize:(o+1)*p.ksize], prek[:n])
		p.first, p.last = min(p.first, xmin), max(p.last, xmin+n)
	}
	if p.first > p.last { // every output pixel is padding
		p.first, p.last = 0, 0
	}
	for o := range crop {
		if p.count[o] > 0 {
			p.start[o] -= p.first
		}
	}
}

// tapsFor fills prek with the normalised bicubic weights of resized pixel r
// and returns its first source index and tap count (PIL precompute_coeffs).
func tapsFor(r int, scale, filterScale, support float64, inSize int, prek []float64) (int, int) {
	center := (float64(r) + 0.5) * scale
	xmin := max(int(center-support+0.5), 0) // int() truncates like C's (int)
	xmax := min(int(center+support+0.5), inSize) - xmin
	ss := 1 / filterScale
	ww := 0.0
	for x := range xmax {
		w := bicubic(float64(float64(x+xmin)-center+0.5) * ss)
		prek[x] = w
		ww += w
	}
	if ww != 0 {
		for x := range xmax {
			prek[x] /= ww
		}
	}
	return xmin, xmax
}

// quantize converts weights to PIL's fixed point, rounding half away from zero.
func quantize(dst []int32, w []float64) {
	clear(dst)
	for i, v := range w {
		if v < 0 {
			dst[i] = int32(-0.5 + v*(1<<precisionBits))
		} else {
			dst[i] = int32(0.5 + v*(1<<precisionBits))
		}
	}
}

// bicubic is PIL's bicubic_filter with a = -0.5. The float64() conversions
// forbid fused multiply-add, so weights round exactly like PIL's C code on
// every architecture.
func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	if x < 1 {
		return float64(float64((a+2)*x-(a+3))*x*x) + 1
	}
	if x < 2 {
		return float64(float64(float64(x-5)*x+8)*x-4) * a
	}
	return 0
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// scratch is the per-call working memory, pooled because Preprocess runs once
// per sampled image and its buffers are the same size every time.
type scratch struct {
	x, y axisPlan
	src  [3][]uint8 // one source row, planar RGB, columns [x.first, x.last)
	tmp  [3][]uint8 // horizontal pass output, planar, rows [y.first, y.last)
	acc  []int32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// horizontal resamples every needed source row to the crop's columns,
// rounding to uint8 as PIL does between its two passes.
func (s *scratch) horizontal(read rowFunc, crop int) {
	rows := s.y.last - s.y.first
	for c := range 3 {
		s.tmp[c] = resize(s.tmp[c], rows*crop)
		s.src[c] = resize(s.src[c], s.x.last-s.x.first)
	}
	for i := range rows {
		read(s.y.first+i, s.x.first, s.x.last, s.src[0], s.src[1], s.src[2])
		o := i * crop
		s.filterRow(s.tmp[0][o:o+crop], s.tmp[1][o:o+crop], s.tmp[2][o:o+crop])
	}
}

func (s *scratch) filterRow(r, g, b []uint8) {
	const half = 1 << (precisionBits - 1)
	// Locals, not s.x.*, so the loop keeps them in registers.
	k, start, count, weights := s.x.ksize, s.x.start, s.x.count, s.x.weights
	src0, src1, src2 := s.src[0], s.src[1], s.src[2]
	start, count = start[:len(r)], count[:len(r)]
	g, b = g[:len(r)], b[:len(r)]
	for j := range r {
		st, n := start[j], count[j]
		w := weights[j*k : j*k+n]
		rs, gs, bs := src0[st:st+n], src1[st:st+n], src2[st:st+n]
		rs, gs, bs = rs[:len(w)], gs[:len(w)], bs[:len(w)]
		sr, sg, sb := int32(half), int32(half), int32(half)
		t := 0
		for ; t+1 < len(w); t += 2 {
			w0, w1 := w[t], w[t+1]
			sr += int32(rs[t])*w0 + int32(rs[t+1])*w1
			sg += int32(gs[t])*w0 + int32(gs[t+1])*w1
			sb += int32(bs[t])*w0 + int32(bs[t+1])*w1
		}
		if t < len(w) {
			sr += int32(rs[t]) * w[t]
			sg += int32(gs[t]) * w[t]
			sb += int32(bs[t]) * w[t]
		}
		r[j], g[j], b[j] = clip8(sr), clip8(sg), clip8(sb)
	}
}

// vertical resamples the intermediate rows to the crop's rows and writes the
// normalised CHW floats.
func (s *scratch) vertical(crop int, lut *[3][256]float32, dst []float32) {
	s.acc = resize(s.acc, crop)
	plane := crop * crop
	k := s.y.ksize
	for c := range 3 {
		tmp, l := s.tmp[c], &lut[c]
		for o := range crop {
			n, st := s.y.count[o], s.y.start[o]
			accumulateRows(s.acc, tmp[st*crop:(st+n)*crop], s.y.weights[o*k:o*k+n])
			out := dst[c*plane+o*crop : c*plane+(o+1)*crop]
			out = out[:len(s.acc)]
			for j, a := range s.acc {
				out[j] = l[clip8(a)]
			}
		}
	}
}

// accumulateRows sets acc[j] = half + sum_t rows[t][j]*w[t], where rows holds
// len(w) consecutive rows of len(acc). Taps go four at a time so acc is
// loaded and stored once per four rows instead of once per row.
func accumulateRows(acc []int32, rows []uint8, w []int32) {
	const half = 1 << (precisionBits - 1)
	n := len(acc)
	for j := range acc {
		acc[j] = half
	}
	t := 0
	for ; t+4 <= len(w); t += 4 {
		w0, w1, w2, w3 := w[t], w[t+1], w[t+2], w[t+3]
		r0 := rows[t*n : (t+1)*n]
		r1 := rows[(t+1)*n : (t+2)*n][:len(r0)]
		r2 := rows[(t+2)*n : (t+3)*n][:len(r0)]
		r3 := rows[(t+3)*n : (t+4)*n][:len(r0)]
		a := acc[:len(r0)]
		for j, v := range r0 {
			a[j] += int32(v)*w0 + int32(r1[j])*w1 + int32(r2[j])*w2 + int32(r3[j])*w3
		}
	}
	for ; t < len(w); t++ {
		wt := w[t]
		r0 := rows[t*n : (t+1)*n]
		a := acc[:len(r0)]
		for j, v := range r0 {
			a[j] += int32(v) * wt
		}
	}
}

// clip8 is PIL's clip8: drop the fraction bits and clamp to 0..255.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// rowFunc writes source row y, columns [x0, x1) relative to the image
// bounds' origin, as 8-bit R, G and B planes of length x1-x0.
type rowFunc func(y, x0, x1 int, r, g, b []uint8)

// rowReader picks a direct-memory reader for the common decoder outputs and
// falls back to At(), which is several times slower but handles any image.
func rowReader(img image.Image) rowFunc {
	switch m := img.(type) {
	case *image.YCbCr:
		if f := ycbcrRows(m); f != nil {
			return f
		}
	case *image.NYCbCrA:
		if f := ycbcrRows(&m.YCbCr); f != nil {
			return f
		}
	case *image.RGBA:
		return rgbaRows(m)
	case *image.NRGBA:
		return nrgbaRows(m)
	case *image.Gray:
		return grayRows(m)
	case *image.Paletted:
		return palettedRows(m)
	case *image.CMYK:
		return cmykRows(m)
	}
	return genericRows(img)
}

func genericRows(img image.Image) rowFunc {
	b := img.Bounds()
	return func(y, x0, x1 int, r, g, bl []uint8) {
		for i := range x1 - x0 {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x0+i, b.Min.Y+y)).(color.NRGBA)
			r[i], g[i], bl[i] = c.R, c.G, c.B
		}
	}
}

func nrgbaRows(m *image.NRGBA) rowFunc {
	return func(y, x0, x1 int, r, g, b []uint8) {
		src := m.Pix[y*m.Stride+4*x0 : y*m.Stride+4*x1]
		r, g, b = r[:len(src)/4], g[:len(src)/4], b[:len(src)/4]
		for i := range r {
			p := src[4*i : 4*i+3 : 4*i+3]
			r[i], g[i], b[i] = p[0], p[1], p[2]
		}
	}
}

func rgbaRows(m *image.RGBA) rowFunc {
	return func(y, x0, x1 int, r, g, b []uint8) {
		src := m.Pix[y*m.Stride+4*x0 : y*m.Stride+4*x1]
		r, g, b = r[:len(src)/4], g[:len(src)/4], b[:len(src)/4]
		for i := range r {
			p := src[4*i : 4*i+4 : 4*i+4]
			if a := p[3]; a == 0xff {
				r[i], g[i], b[i] = p[0], p[1], p[2]
			} else {
				r[i], g[i], b[i] = unpremul(p[0], a), unpremul(p[1], a), unpremul(p[2], a)
			}
		}
	}
}

// unpremul undoes alpha premultiplication exactly like color.NRGBAModel, so
// the fast path and the At() fallback agree bit for bit.
func unpremul(c, a uint8) uint8 {
	if a == 0 {
		return 0
	}
	return uint8((uint32(c) * 0x101 * 0xffff / (uint32(a) * 0x101)) >> 8)
}

func grayRows(m *image.Gray) rowFunc {
	return func(y, x0, x1 int, r, g, b []uint8) {
		src := m.Pix[y*m.Stride+x0 : y*m.Stride+x1]
		copy(r, src)
		copy(g, src)
		copy(b, src)
	}
}

func palettedRows(m *image.Paletted) rowFunc {
	// Indices beyond the palette read as black; At() would panic on them.
	var pal [256][3]uint8
	for i, c := range m.Palette[:min(len(m.Palette), 256)] {
		n := color.NRGBAModel.Convert(c).(color.NRGBA)
		pal[i] = [3]uint8{n.R, n.G, n.B}
	}
	return func(y, x0, x1 int, r, g, b []uint8) {
		src := m.Pix[y*m.Stride+x0 : y*m.Stride+x1]
		r, g, b = r[:len(src)], g[:len(src)], b[:len(src)]
		for i, v := range src {
			p := &pal[v]
			r[i], g[i], b[i] = p[0], p[1], p[2]
		}
	}
}

// ycbcrRows reads planar YCbCr with chroma subsampling, converting with the
// same integer formula as color.YCbCrToRGB (written out here because the
// call does not inline). It returns nil for images whose origin is negative,
// where the shift-based chroma indexing would disagree with
// image.YCbCr.COffset.
func ycbcrRows(m *image.YCbCr) rowFunc {
	hs, vs, ok := chromaShift(m.SubsampleRatio)
	rect := m.Rect
	if !ok || rect.Min.X < 0 || rect.Min.Y < 0 {
		return nil
	}
	return func(y, x0, x1 int, r, g, b []uint8) {
		yrow := m.Y[y*m.YStride+x0 : y*m.YStride+x1]
		cbase := ((rect.Min.Y+y)>>vs-rect.Min.Y>>vs)*m.CStride - rect.Min.X>>hs
		ax := rect.Min.X + x0
		r, g, b = r[:len(yrow)], g[:len(yrow)], b[:len(yrow)]
		for i, yv := range yrow {
			ci := cbase + (ax+i)>>hs
			yy1 := int32(yv) * 0x10101
			cb1 := int32(m.Cb[ci]) - 128
			cr1 := int32(m.Cr[ci]) - 128
			r[i] = clampYCC(yy1 + 91881*cr1)
			g[i] = clampYCC(yy1 - 22554*cb1 - 46802*cr1)
			b[i] = clampYCC(yy1 + 116130*cb1)
		}
	}
}

func chromaShift(r image.YCbCrSubsampleRatio) (h, v uint, ok bool) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 0, 0, true
	case image.YCbCrSubsampleRatio422:
		return 1, 0, true
	case image.YCbCrSubsampleRatio420:
		return 1, 1, true
	case image.YCbCrSubsampleRatio440:
		return 0, 1, true
	case image.YCbCrSubsampleRatio411:
		return 2, 0, true
	case image.YCbCrSubsampleRatio410:
		return 2, 1, true
	}
	return 0, 0, false
}

// clampYCC is the rounding and clamping tail of color.YCbCrToRGB.
func clampYCC(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}
