package embed

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// repoRoot walks up from the test's working directory to the directory
// holding go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// ortLibrary finds the ONNX Runtime library: $LOOKOUT_ORT_LIBRARY, else
// $LOOKOUT_STATE_DIR/ort or <repo>/.lookout/ort as scripts/setup.sh puts it.
// It fails rather than skips: a CI run without ORT must not pass green.
func ortLibrary(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("LOOKOUT_ORT_LIBRARY")
	if p == "" {
		state := os.Getenv("LOOKOUT_STATE_DIR")
		if state == "" {
			state = filepath.Join(repoRoot(tb), ".lookout")
		}
		p = filepath.Join(state, "ort", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("ONNX Runtime library missing (%v): run `make setup` (scripts/setup.sh) or set LOOKOUT_ORT_LIBRARY", err)
	}
	return p
}

func tinyModelPath(tb testing.TB) string {
	return filepath.Join(repoRoot(tb), "models", "dinov2-tiny-random.onnx")
}

func openTiny(tb testing.TB) *Model {
	tb.Helper()
	m, err := Open(ModelConfig{Path: tinyModelPath(tb), ORTLibrary: ortLibrary(tb), IntraOpThreads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// scene draws a deterministic, structured picture (gradients, discs, stripes,
// fine texture) so resizing and the model see edges at every scale.
func scene(w, h int, seed uint64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(seed, 7))
	type disc struct {
		x, y, r float64
		c       color.NRGBA
	}
	discs := make([]disc, 12)
	for i := range discs {
		discs[i] = disc{rng.Float64() * float64(w), rng.Float64() * float64(h), 10 + rng.Float64()*float64(min(w, h))/4,
			color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}}
	}
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), uint8(128 + 100*math.Sin(float64(x+y)/9)), 255}
			if (x/7)%5 == 0 {
				c.G = 255 - c.G
			}
			for _, d := range discs {
				if dx, dy := float64(x)-d.x, float64(y)-d.y; dx*dx+dy*dy < d.r*d.r {
					c = d.c
					c.R ^= uint8((x ^ y) & 8 * 4)
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// noised adds small uniform noise, the kind of change that must NOT look like drift.
func noised(src *image.NRGBA, amp int, seed uint64) *image.NRGBA {
	rng := rand.New(rand.NewPCG(seed, 9))
	dst := image.NewNRGBA(src.Rect)
	for i, v := range src.Pix {
		if i%4 == 3 {
			dst.Pix[i] = v
			continue
		}
		dst.Pix[i] = clampU8(int(v) + rng.IntN(2*amp+1) - amp)
	}
	return dst
}

// darkBlurred scales brightness by gain and box-blurs with radius r: a dim
// scene seen through a dirty lens, the kind of change that IS drift.
func darkBlurred(src *image.NRGBA, gain float64, r int) *image.NRGBA {
	b := src.Rect
	dst := image.NewNRGBA(b)
	for y := range b.Dy() {
		for x := range b.Dx() {
			var sum [3]int
			n := 0
			for yy := max(0, y-r); yy <= min(b.Dy()-1, y+r); yy++ {
				for xx := max(0, x-r); xx <= min(b.Dx()-1, x+r); xx++ {
					p := src.Pix[yy*src.Stride+4*xx:]
					sum[0], sum[1], sum[2] = sum[0]+int(p[0]), sum[1]+int(p[1]), sum[2]+int(p[2])
					n++
				}
			}
			o := dst.Pix[y*dst.Stride+4*x:]
			for c := range 3 {
				o[c] = clampU8(int(math.Round(gain * float64(sum[c]) / float64(n))))
			}
			o[3] = 255
		}
	}
	return dst
}

func clampU8(v int) uint8 {
	return uint8(max(0, min(255, v)))
}

func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(tb testing.TB, img image.Image, q int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func cosineDistance(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return 1 - dot/math.Sqrt(na*nb)
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
