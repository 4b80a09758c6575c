package embed

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pilParityTolerance is the largest |Go - PIL| accepted per value for
// lossless (PNG) input. Preprocess reproduces PIL's fixed-point resampling
// and transformers' float32 normalisation, so the expected difference is 0;
// the slack only absorbs float32 rounding. For scale: one uint8 step after
// the resize is 1/255/std ≈ 0.017, so a single off-by-one pixel fails.
const pilParityTolerance = 1e-5

type parityCase struct {
	name string
	img  image.Image
}

func parityCases() []parityCase {
	alpha := scene(320, 240, 4)
	for i := 3; i < len(alpha.Pix); i += 4 {
		alpha.Pix[i] = uint8(i / 4 % 256) // RGB kept under varying alpha; PIL drops alpha
	}
	gray := image.NewGray(image.Rect(0, 0, 500, 375))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i*7/3 + i/500)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 300, 200), color.Palette{
		color.NRGBA{255, 0, 0, 255}, color.NRGBA{0, 200, 30, 255}, color.NRGBA{10, 20, 250, 255}, color.NRGBA{240, 240, 240, 255}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8((i/13 + i/300/9) % 4)
	}
	noise := image.NewNRGBA(image.Rect(0, 0, 641, 479))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.IntN(256)) | 0 // full-range noise drives the negative lobes into clipping
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	return []parityCase{
		{"landscape640x480", scene(640, 480, 1)},
		{"portrait480x640", scene(480, 640, 2)},
		{"odd333x251", scene(333, 251, 3)},
		{"upscale200x150", scene(200, 150, 5)},
		{"widthkept256x300", scene(256, 300, 6)},
		{"alpha320x240", alpha},
		{"gray500x375", gray},
		{"paletted300x200", pal},
		{"noise641x479", noise},
	}
}

// runPIL writes each image as PNG, runs testdata/pil_reference.py on all of
// them in one process and returns the reference tensors by name.
func runPIL(t *testing.T, files map[string][]byte, args ...string) map[string][]float32 {
	t.Helper()
	dir := t.TempDir()
	cmdArgs := append([]string{filepath.Join("testdata", "pil_reference.py")}, args...)
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmdArgs = append(cmdArgs, p)
	}
	out, err := exec.Command("/usr/bin/python3", cmdArgs...).CombinedOutput()
	if err != nil {
		t.Fatalf("PIL reference failed (needs Debian python3-pil and python3-numpy; run `make setup`): %v\n%s", err, out)
	}
	ref := make(map[string][]float32, len(files))
	for name := range files {
		raw, err := os.ReadFile(filepath.Join(dir, name+".f32"))
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, len(raw)/4)
		if err := binary.Read(bytes.NewReader(raw), binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
		ref[name] = v
	}
	return ref
}

// TestPreprocessMatchesPIL compares Preprocess of PNG files decoded by
// Decode with PIL on the same files, for the default config and for one
// whose crop exceeds the resized image (transformers' zero padding).
func TestPreprocessMatchesPIL(t *testing.T) {
	configs := []PreprocessConfig{DefaultPreprocess(), DefaultPreprocess()}
	configs[1].ResizeShortest, configs[1].Crop = 201, 224
	for _, cfg := range configs {
		files := map[string][]byte{}
		for _, c := range parityCases() {
			files[c.name+".png"] = encodePNG(t, c.img)
		}
		ref := runPIL(t, files, "--resize", fmt.Sprint(cfg.ResizeShortest), "--crop", fmt.Sprint(cfg.Crop))
		for name, data := range files {
			img, err := Decode(data, Limits{})
			if err != nil {
				t.Fatal(name, err)
			}
			got := Preprocess(img, cfg, nil)
			if len(got) != len(ref[name]) {
				t.Fatalf("%s: %d values, PIL %d", name, len(got), len(ref[name]))
			}
			d := maxAbsDiff(got, ref[name])
			t.Logf("resize %d crop %d %-24s %T max|Go-PIL| = %.2g", cfg.ResizeShortest, cfg.Crop, name, img, d)
			if d > pilParityTolerance {
				t.Errorf("%s (%T): max abs diff %.4g > %g", name, img, d, pilParityTolerance)
			}
		}
	}
}

// TestPreprocessJPEGCloseToPIL documents how far a JPEG drifts from PIL: Go's
// decoder upsamples 4:2:0 chroma by pixel replication, libjpeg-turbo with a
// triangle filter, so colour edges differ by a few uint8 levels. The bounds
// are loose on purpose; they catch a broken pipeline, not decoder detail.
func TestPreprocessJPEGCloseToPIL(t *testing.T) {
	files := map[string][]byte{"scene.jpg": encodeJPEG(t, scene(640, 480, 1), 90)}
	ref := runPIL(t, files)
	img, err := Decode(files["scene.jpg"], Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := Preprocess(img, DefaultPreprocess(), nil)
	var sum float64
	for i := range got {
		sum += math.Abs(float64(got[i]) - float64(ref["scene.jpg"][i]))
	}
	mean, mx := sum/float64(len(got)), maxAbsDiff(got, ref["scene.jpg"])
	t.Logf("JPEG q90 4:2:0 (%T): mean |Go-PIL| = %.3g, max = %.3g", img, mean, mx)
	if mean > 0.05 || mx > 1.0 {
		t.Errorf("JPEG preprocessing too far from PIL: mean %.3g (limit 0.05), max %.3g (limit 1.0)", mean, mx)
	}
}

// opaque hides an image's concrete type, forcing the At() fallback.
type opaque struct{ image.Image }

// TestPreprocessFastPathsMatchFallback checks every type-specific row reader
// against the generic At() path, including sub-images with offset origins.
func TestPreprocessFastPathsMatchFallback(t *testing.T) {
	base := scene(403, 311, 8)
	ycc := func(r image.YCbCrSubsampleRatio) image.Image {
		m := image.NewYCbCr(base.Rect, r)
		rng := rand.New(rand.NewPCG(uint64(r), 3))
		for _, p := range [][]uint8{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = uint8(rng.IntN(256))
			}
		}
		return m
	}
	rgba := image.NewRGBA(base.Rect)
	for i := range rgba.Pix {
		rgba.Pix[i] = base.Pix[i] / 2
		if i%4 == 3 {
			rgba.Pix[i] = uint8(128 + i%128) // premultiplied values stay <= alpha
		}
	}
	gray := image.NewGray(base.Rect)
	copy(gray.Pix, base.Pix)
	pal := image.NewPaletted(base.Rect, color.Palette{color.Black, color.White, color.NRGBA{200, 10, 10, 128}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 5) // indices 3 and 4 are outside the palette
	}
	nycc := &image.NYCbCrA{YCbCr: *ycc(image.YCbCrSubsampleRatio420).(*image.YCbCr)}
	// Opaque here: At() premultiplies, which loses RGB under low alpha, while
	// the fast path drops alpha like PIL's convert("RGB") (checked below).
	nycc.A = bytes.Repeat([]uint8{255}, 403*311)
	nycc.AStride = 403
	imgs := map[string]image.Image{
		"nrgba": base, "rgba": rgba, "gray": gray, "nycbcra": nycc,
		"ycbcr444": ycc(image.YCbCrSubsampleRatio444), "ycbcr422": ycc(image.YCbCrSubsampleRatio422),
		"ycbcr420": ycc(image.YCbCrSubsampleRatio420), "ycbcr440": ycc(image.YCbCrSubsampleRatio440),
		"ycbcr411": ycc(image.YCbCrSubsampleRatio411), "ycbcr410": ycc(image.YCbCrSubsampleRatio410),
	}
	for name, img := range imgs {
		sub := img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(33, 17, 400, 300))
		for label, m := range map[string]image.Image{name: img, name + "/sub": sub} {
			fast := Preprocess(m, DefaultPreprocess(), nil)
			slow := Preprocess(opaque{m}, DefaultPreprocess(), nil)
			if d := maxAbsDiff(fast, slow); d != 0 {
				t.Errorf("%s: fast path differs from At() fallback by %g", label, d)
			}
		}
	}
	clear(nycc.A)
	if d := maxAbsDiff(Preprocess(nycc, DefaultPreprocess(), nil), Preprocess(&nycc.YCbCr, DefaultPreprocess(), nil)); d != 0 {
		t.Errorf("nycbcra: alpha changed the result by %g", d)
	}
	// Paletted At() panics on out-of-range indices, so compare it against an
	// NRGBA copy with the documented black for those.
	want := image.NewNRGBA(pal.Rect)
	for i, v := range pal.Pix {
		c := color.NRGBA{A: 255}
		if int(v) < len(pal.Palette) {
			c = color.NRGBAModel.Convert(pal.Palette[v]).(color.NRGBA)
		}
		want.Pix[4*i], want.Pix[4*i+1], want.Pix[4*i+2] = c.R, c.G, c.B
	}
	if d := maxAbsDiff(Preprocess(pal, DefaultPreprocess(), nil), Preprocess(want, DefaultPreprocess(), nil)); d != 0 {
		t.Errorf("paletted: differs from NRGBA equivalent by %g", d)
	}
}

func TestPreprocessReusesDstAndHandlesEdgeCases(t *testing.T) {
	cfg := DefaultPreprocess()
	buf := make([]float32, 0, 3*224*224+10)
	out := Preprocess(scene(64, 48, 1), cfg, buf)
	if len(out) != 3*224*224 || &out[0] != &buf[:1][0] {
		t.Fatalf("dst not reused: len %d", len(out))
	}
	for _, r := range []image.Rectangle{image.Rect(0, 0, 0, 0), image.Rect(0, 0, 1, 1), image.Rect(0, 0, 1, 3000), image.Rect(5, 5, 5, 9)} {
		got := Preprocess(image.NewGray(r), cfg, nil) // must not panic
		if len(got) != 3*224*224 {
			t.Fatalf("%v: len %d", r, len(got))
		}
	}
	bad := cfg
	bad.Std[1] = 0
	if bad.Validate() == nil {
		t.Error("zero std accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("invalid config did not panic")
		}
	}()
	Preprocess(scene(8, 8, 1), bad, nil)
}

// BenchmarkPreprocess640x480 measures one camera frame, as each decoder
// hands it over (ycbcr420 is what image/jpeg returns for a colour JPEG).
func BenchmarkPreprocess640x480(b *testing.B) {
	src := scene(640, 480, 1)
	jpg, err := Decode(encodeJPEG(b, src, 90), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	rgba := image.NewRGBA(src.Rect)
	copy(rgba.Pix, src.Pix)
	gray := image.NewGray(src.Rect)
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"ycbcr420", jpg}, {"rgba", rgba}, {"nrgba", src}, {"gray", gray}, {"generic", opaque{src}}} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]float32, 3*224*224)
			cfg := DefaultPreprocess()
			for b.Loop() {
				dst = Preprocess(c.img, cfg, dst)
			}
		})
	}
}
