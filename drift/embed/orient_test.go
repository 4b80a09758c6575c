package embed

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// withOrientation inserts an EXIF APP1 segment holding orientation o right
// after the SOI marker of a JPEG, in little- or big-endian TIFF order.
func withOrientation(jpg []byte, o int, bigEndian bool) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	tiff := []byte("II*\x00")
	if bigEndian {
		bo, tiff = binary.BigEndian, []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8)
	tiff = bo.AppendUint16(tiff, 2) // two entries: an unrelated tag first
	tiff = bo.AppendUint16(tiff, 0x010f)
	tiff = bo.AppendUint16(tiff, 2)
	tiff = bo.AppendUint32(tiff, 4)
	tiff = append(tiff, 'a', 'c', 'm', 0)
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, uint16(o))
	tiff = append(tiff, 0, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xff, 0xd8, 0xff, 0xe1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestJPEGOrientationParsing(t *testing.T) {
	jpg := encodeJPEG(t, scene(40, 30, 1), 80)
	if o := jpegOrientation(jpg); o != 1 {
		t.Errorf("no EXIF: %d, want 1", o)
	}
	for o := 1; o <= 8; o++ {
		for _, be := range []bool{false, true} {
			if got := jpegOrientation(withOrientation(jpg, o, be)); got != o {
				t.Errorf("orientation %d (big endian %v): read %d", o, be, got)
			}
		}
	}
	bad := withOrientation(jpg, 6, false)
	for _, cut := range []int{5, 12, 20, 30} { // truncated inside the segment
		if o := jpegOrientation(bad[:cut]); o != 1 {
			t.Errorf("truncated at %d: %d, want 1", cut, o)
		}
	}
	if o := jpegOrientation(withOrientation(jpg, 9, false)); o != 1 {
		t.Errorf("orientation 9 (invalid): %d, want 1", o)
	}
	// Decode turns a portrait shot stored as landscape upright.
	img, err := Decode(withOrientation(jpg, 6, true), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 30 || b.Dy() != 40 {
		t.Errorf("orientation 6: %v, want 30x40", b)
	}
}

// TestOrientationAndCMYKMatchPIL compares Decode+Preprocess of JPEGs with
// every EXIF orientation, and of a CMYK JPEG written by PIL, with PIL's
// exif_transpose + convert("RGB") pipeline on the same bytes. Grayscale
// JPEGs avoid the chroma-upsampling difference, so what remains is IDCT
// rounding; the bound would be exceeded many times over by a wrong rotation.
func TestOrientationAndCMYKMatchPIL(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 400, 300))
	src := scene(400, 300, 9)
	for i := range gray.Pix {
		gray.Pix[i] = src.Pix[4*i+1]
	}
	base := encodeJPEG(t, gray, 92)
	files := map[string][]byte{}
	for o := 1; o <= 8; o++ {
		files[fmt.Sprintf("o%d.jpg", o)] = withOrientation(base, o, o%2 == 0)
	}
	files["cmyk.jpg"] = pilCMYKJPEG(t)
	ref := runPIL(t, files)
	for name, data := range files {
		img, err := Decode(data, Limits{})
		if err != nil {
			t.Fatal(name, err)
		}
		got := Preprocess(img, DefaultPreprocess(), nil)
		mean, mx := meanAbsDiff(got, ref[name]), maxAbsDiff(got, ref[name])
		t.Logf("%-9s %-14T mean |Go-PIL| = %.3g, max = %.3g", name, img, mean, mx)
		if mean > 0.005 || mx > 0.1 {
			t.Errorf("%s: mean %.3g (limit 0.005), max %.3g (limit 0.1)", name, mean, mx)
		}
		if name == "cmyk.jpg" {
			if _, ok := img.(*image.CMYK); !ok {
				t.Errorf("cmyk.jpg decoded as %T", img)
			}
		}
	}
	// The test can fail: orientation 3 compared with the unrotated reference.
	img, _ := Decode(files["o3.jpg"], Limits{})
	if d := meanAbsDiff(Preprocess(img, DefaultPreprocess(), nil), ref["o1.jpg"]); d < 0.1 {
		t.Errorf("rotated and upright images differ by only %.3g: the comparison cannot see orientation", d)
	}
}

// pilCMYKJPEG has PIL write a CMYK JPEG (with the Adobe marker, inverted as
// Photoshop does), the kind print and prepress pipelines produce.
func pilCMYKJPEG(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cmyk.jpg")
	script := `import sys
from PIL import Image
im = Image.new("CMYK", (320, 240))
px = im.load()
for y in range(240):
    for x in range(320):
        px[x, y] = (x * 255 // 320, y * 255 // 240, ((x // 20 + y // 20) % 2) * 200, (x + y) % 64)
im.save(sys.argv[1], quality=95)`
	if out, err := exec.Command("/usr/bin/python3", "-c", script, p).CombinedOutput(); err != nil {
		t.Fatalf("PIL could not write a CMYK JPEG (run make setup): %v\n%s", err, out)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func meanAbsDiff(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

// FuzzJPEGOrientation feeds arbitrary bytes to the EXIF reader, which runs
// on every JPEG from outside: it must never panic and only return 1..8.
func FuzzJPEGOrientation(f *testing.F) {
	jpg := encodeJPEG(f, scene(16, 16, 1), 80)
	f.Add(jpg)
	f.Add(withOrientation(jpg, 6, true))
	f.Add(withOrientation(jpg, 3, false)[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := jpegOrientation(data); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
