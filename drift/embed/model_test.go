package embed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestOpenTinyModelAcceptsContract(t *testing.T) {
	m := openTiny(t)
	if m.Dim() != 32 || m.InputSize() != 224 {
		t.Fatalf("Dim %d InputSize %d, want 32 and 224", m.Dim(), m.InputSize())
	}
	data, err := os.ReadFile(tinyModelPath(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if want := "dinov2-tiny-random@" + hex.EncodeToString(sum[:6]); m.ID() != want {
		t.Fatalf("ID %q, want %q", m.ID(), want)
	}
}

func TestOpenRefusesWrongContract(t *testing.T) {
	lib := ortLibrary(t)
	_, err := Open(ModelConfig{Path: filepath.Join("testdata", "wrong-input.onnx"), ORTLibrary: lib})
	want := `model wrong-input.onnx: input "pixel_values" missing (has "input")`
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v, want %q", err, want)
	}
	if _, err := Open(ModelConfig{Path: filepath.Join("testdata", "absent.onnx"), ORTLibrary: lib}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
	notONNX := filepath.Join(t.TempDir(), "junk.onnx")
	os.WriteFile(notONNX, []byte("not a model"), 0o644)
	if _, err := Open(ModelConfig{Path: notONNX, ORTLibrary: lib}); err == nil || !strings.Contains(err.Error(), "junk.onnx") {
		t.Fatalf("junk file: got %v", err)
	}
	// ORT is process-wide: a second, different library must be refused, not ignored.
	if _, err := Open(ModelConfig{Path: tinyModelPath(t), ORTLibrary: lib + ".other"}); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Fatalf("second library path: got %v", err)
	}
}

// embedImages preprocesses imgs into one batch and embeds it.
func embedImages(t testing.TB, m *Model, imgs ...image.Image) [][]float32 {
	t.Helper()
	per := 3 * m.InputSize() * m.InputSize()
	px := make([]float32, len(imgs)*per)
	for i, img := range imgs {
		Preprocess(img, DefaultPreprocess(), px[i*per:(i+1)*per])
	}
	out, err := m.Embed(context.Background(), px, len(imgs))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEmbedDeterministicAndNormalised(t *testing.T) {
	m := openTiny(t)
	img := scene(640, 480, 1)
	a, b := embedImages(t, m, img)[0], embedImages(t, m, img)[0]
	if len(a) != 32 {
		t.Fatalf("len %d", len(a))
	}
	if d := maxAbsDiff(a, b); d != 0 {
		t.Errorf("two runs differ by %g", d)
	}
	var ss float64
	for _, v := range a {
		ss += float64(v) * float64(v)
	}
	if math.Abs(math.Sqrt(ss)-1) > 1e-5 {
		t.Errorf("norm %v, want 1", math.Sqrt(ss))
	}
}

func TestEmbedBatchEqualsSingles(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{scene(640, 480, 1), scene(300, 500, 2), scene(224, 224, 3)}
	batch := embedImages(t, m, imgs...)
	for i, img := range imgs {
		single := embedImages(t, m, img)[0]
		if d := maxAbsDiff(batch[i], single); d > 1e-5 {
			t.Errorf("image %d: batch vs single differ by %g", i, d)
		}
	}
	if cosineDistance(batch[0], batch[1]) < 1e-4 {
		t.Error("different images embed the same")
	}
}

// TestEmbedSeparatesDomainShift is the property drift detection relies on: a
// dim, blurred view of a scene (dirty lens, lights off) moves the embedding
// much more than sensor noise does.
func TestEmbedSeparatesDomainShift(t *testing.T) {
	m := openTiny(t)
	base := scene(640, 480, 11)
	e := embedImages(t, m, base, noised(base, 4, 1), darkBlurred(base, 0.45, 4))
	noise, shift := cosineDistance(e[0], e[1]), cosineDistance(e[0], e[2])
	t.Logf("cosine distance: noised %.3g, dark+blurred %.3g (ratio %.0f)", noise, shift, shift/noise)
	if shift < 0.01 || shift < 10*noise {
		t.Errorf("dark+blurred distance %.3g not clearly above noise distance %.3g", shift, noise)
	}
}

func TestEmbedRejectsBadCalls(t *testing.T) {
	m := openTiny(t)
	per := 3 * 224 * 224
	ctx := context.Background()
	if _, err := m.Embed(ctx, make([]float32, per-1), 1); err == nil {
		t.Error("short input accepted")
	}
	if _, err := m.Embed(ctx, nil, 0); err == nil {
		t.Error("empty batch accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Embed(cancelled, make([]float32, per), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := m.Embed(ctx, make([]float32, per), 1); err != nil {
		t.Errorf("zero image: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Embed(ctx, make([]float32, per), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestEmbedConcurrent runs one Model from several goroutines (the worker
// pool's usage); with -race it also checks the Go side for data races.
func TestEmbedConcurrent(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{scene(320, 240, 1), scene(320, 240, 2), scene(320, 240, 3), scene(320, 240, 4)}
	want := embedImages(t, m, imgs...)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px := Preprocess(imgs[g], DefaultPreprocess(), nil)
			for range 5 {
				got, err := m.Embed(context.Background(), px, 1)
				if err != nil {
					errs <- err.Error()
					return
				}
				if d := maxAbsDiff(got[0], want[g]); d > 1e-5 {
					errs <- "concurrent result differs"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkEmbedTiny(b *testing.B) {
	m := openTiny(b)
	px := Preprocess(scene(640, 480, 1), DefaultPreprocess(), nil)
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Embed(ctx, px, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEmbedViTS14 needs the ViT-S/14-shaped model, which is too large
// to commit: /usr/bin/python3 scripts/gen_model.py --preset vits14.
func BenchmarkEmbedViTS14(b *testing.B) {
	path := filepath.Join(repoRoot(b), ".lookout", "models", "dinov2-vits14-random.onnx")
	if _, err := os.Stat(path); err != nil {
		b.Skipf("%v; generate it with: /usr/bin/python3 scripts/gen_model.py --preset vits14", err)
	}
	m, err := Open(ModelConfig{Path: path, ORTLibrary: ortLibrary(b), IntraOpThreads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	px := Preprocess(scene(640, 480, 1), DefaultPreprocess(), nil)
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Embed(ctx, px, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}
