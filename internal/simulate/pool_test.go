package simulate

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
)

func poolPath(dir, source, cond, class string, i int) string {
	return filepath.Join(dir, source, cond, fmt.Sprintf("%s-%d.jpg", class, i))
}

func decodeJPEG(t *testing.T, path string) image.Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func TestPoolPicturesAreJPEGsOfTheRightSize(t *testing.T) {
	g := newTestGenerator(t, nil)
	dir := g.Config().ImageDir
	for _, source := range g.Config().Sources {
		for _, cond := range []string{condNormal, condShifted} {
			for _, class := range Classes {
				for i := range sharedImagesPerClass {
					img := decodeJPEG(t, poolPath(dir, source, cond, class, i))
					if b := img.Bounds(); b.Dx() != ImageWidth || b.Dy() != ImageHeight {
						t.Errorf("%s/%s/%s-%d: %dx%d, want %dx%d", source, cond, class, i, b.Dx(), b.Dy(), ImageWidth, ImageHeight)
					}
				}
			}
		}
	}
	if _, err := os.Stat(poolPath(dir, "cam-1", condNormal, "good", sharedImagesPerClass)); !os.IsNotExist(err) {
		t.Errorf("pool has more pictures than images_per_class: %v", err)
	}
}

// lumaStats returns a colour JPEG's mean luminance and mean absolute
// horizontal luminance gradient, a simple sharpness measure. JPEG stores
// luminance as its Y plane, so that is read directly.
func lumaStats(t *testing.T, img image.Image) (mean, grad float64) {
	t.Helper()
	ycc, ok := img.(*image.YCbCr)
	if !ok {
		t.Fatalf("decoded %T, want a colour JPEG", img)
	}
	w, h := ycc.Rect.Dx(), ycc.Rect.Dy()
	for y := range h {
		row := ycc.Y[y*ycc.YStride : y*ycc.YStride+w]
		for x, v := range row {
			mean += float64(v)
			if x > 0 {
				grad += abs(float64(v) - float64(row[x-1]))
			}
		}
	}
	return mean / float64(w*h), grad / float64((w-1)*h)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestShiftedPicturesAreDarkerAndBlurrier(t *testing.T) {
	g := newTestGenerator(t, nil)
	dir := g.Config().ImageDir
	for _, source := range g.Config().Sources {
		for _, class := range Classes {
			nMean, nGrad := lumaStats(t, decodeJPEG(t, poolPath(dir, source, condNormal, class, 0)))
			sMean, sGrad := lumaStats(t, decodeJPEG(t, poolPath(dir, source, condShifted, class, 0)))
			if sMean > 0.7*nMean {
				t.Errorf("%s/%s: shifted mean luminance %.1f is not 30%% below normal %.1f", source, class, sMean, nMean)
			}
			if sGrad >= nGrad {
				t.Errorf("%s/%s: shifted gradient %.2f is not below normal %.2f", source, class, sGrad, nGrad)
			}
		}
	}
}

// Cameras have their own tone, so the drift detector sees sources that
// differ a little even without a shift, as real ones do.
func TestCamerasLookDifferent(t *testing.T) {
	g := newTestGenerator(t, nil)
	dir := g.Config().ImageDir
	a := decodeJPEG(t, poolPath(dir, "cam-1", condNormal, "good", 0))
	b := decodeJPEG(t, poolPath(dir, "cam-2", condNormal, "good", 0))
	ar, ag, ab := meanRGB(a)
	br, bg, bb := meanRGB(b)
	if abs(ar-br)+abs(ag-bg)+abs(ab-bb) < 3 {
		t.Errorf("cam-1 (%.0f,%.0f,%.0f) and cam-2 (%.0f,%.0f,%.0f) have the same tone", ar, ag, ab, br, bg, bb)
	}
}

func meanRGB(img image.Image) (r, g, b float64) {
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			r, g, b = r+float64(pr)/257, g+float64(pg)/257, b+float64(pb)/257
		}
	}
	n := float64(bd.Dx() * bd.Dy())
	return r / n, g / n, b / n
}

func TestPoolIsReusedAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ImageDir: dir, ImagesPerClass: 1, Seed: 3, Sources: []string{"cam-1"}}
	if _, err := NewGenerator(cfg); err != nil {
		t.Fatal(err)
	}
	kept := poolPath(dir, "cam-1", condNormal, "crack", 0)
	removed := poolPath(dir, "cam-1", condShifted, "rust", 0)
	keptInfo, _ := os.Stat(kept)
	original, err := os.ReadFile(removed)
	if err != nil {
		t.Fatal(err)
	}
	// Mark the kept file so a rewrite would be noticed even within the
	// file system's timestamp resolution.
	if err := os.WriteFile(kept, append(readFile(t, kept), 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGenerator(cfg); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, kept); len(got) != int(keptInfo.Size())+1 {
		t.Errorf("existing picture %s was rewritten", kept)
	}
	if !bytes.Equal(readFile(t, removed), original) {
		t.Errorf("re-rendered %s differs from the original render with the same seed", removed)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*", ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestNewGeneratorReportsUnwritableImageDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGenerator(Config{ImageDir: file, ImagesPerClass: 1}); err == nil {
		t.Error("NewGenerator succeeded with image_dir being a file")
	}
}
