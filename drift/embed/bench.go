package embed

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// BenchConfig sizes Bench.
type BenchConfig struct {
	// Images is the number of images embedded in each measured phase.
	Images int
	// Distinct JPEG files (Width×Height) are written to Dir and reused
	// cyclically, so file reads come from the page cache as a camera's
	// recent frames would.
	Distinct, Width, Height int
	Dir                     string
	// Rounds alternates raw and pipeline phases this many times (then one
	// more raw phase), so both see the same mix of outside load; the
	// result sums all phases of a kind.
	Rounds int
}

// BenchResult is one Bench run.
type BenchResult struct {
	Images int
	// RawMin and RawMax are the slowest and fastest raw phase (images/s),
	// a measure of how much outside load moved the numbers.
	RawMin, RawMax float64
	// Raw is the model alone on pre-made tensors, with the stage's inferers
	// and batch size: total images / total time of the raw phases.
	Raw float64
	// Pipeline is images/s through Stage.Store: fetch, decode, preprocess,
	// inference and the ClickHouse insert, over all pipeline phases.
	Pipeline float64
	// RawCPU and PipelineCPU are this process's CPU time (user+system) per
	// image in each kind of phase. Their ratio is what the throughput ratio
	// converges to when the cores are saturated, and it depends much less
	// on other processes' load than wall-clock rates do.
	RawCPU, PipelineCPU time.Duration
	Steps               StageStats
	// PeakRSS is the process's peak resident set size in bytes.
	PeakRSS int64
}

// Ratio is Pipeline / Raw.
func (r BenchResult) Ratio() float64 { return r.Pipeline / r.Raw }

// CPURatio is RawCPU / PipelineCPU: the share of the pipeline's CPU time
// per image that the model itself needs.
func (r BenchResult) CPURatio() float64 { return r.RawCPU.Seconds() / r.PipelineCPU.Seconds() }

// Bench measures, in one run on the stage's model and settings, the raw
// ONNX Runtime throughput on pre-made tensors and the end-to-end throughput
// of the stage from JPEG files on disk to rows in ClickHouse.
func Bench(ctx context.Context, s *Stage, cfg BenchConfig, progress func(string)) (BenchResult, error) {
	res := BenchResult{Images: cfg.Images}
	paths, err := writeBenchImages(cfg)
	if err != nil {
		return res, err
	}
	progress(fmt.Sprintf("wrote %d JPEG files %dx%d to %s", len(paths), cfg.Width, cfg.Height, cfg.Dir))
	tensors, err := s.benchTensors(paths)
	if err != nil {
		return res, err
	}
	// Warm-up: the first runs allocate ORT's arenas and fault in weights.
	if _, err := s.runRaw(ctx, tensors, 2*s.opts.Inferers*s.opts.InferBatch); err != nil {
		return res, err
	}
	rounds := max(cfg.Rounds, 1)
	var raw, pipe phaseTotals
	before := s.Stats()
	for r := 0; r <= rounds; r++ {
		rate, err := raw.measure(func() (float64, error) { return s.runRaw(ctx, tensors, cfg.Images) }, cfg.Images)
		if err != nil {
			return res, err
		}
		res.RawMin, res.RawMax = minNonZero(res.RawMin, rate), max(res.RawMax, rate)
		progress(fmt.Sprintf("round %d: raw ONNX Runtime %.2f images/s", r+1, rate))
		if r == rounds {
			break
		}
		rate, err = pipe.measure(func() (float64, error) { return s.runPipeline(ctx, paths, cfg.Images) }, cfg.Images)
		if err != nil {
			return res, err
		}
		progress(fmt.Sprintf("round %d: pipeline files → fetch → decode → preprocess → ONNX → ClickHouse %.2f images/s", r+1, rate))
	}
	res.Steps = diffStats(s.Stats(), before)
	res.Raw, res.RawCPU = raw.rate(), raw.cpuPerImage()
	res.Pipeline, res.PipelineCPU = pipe.rate(), pipe.cpuPerImage()
	res.PeakRSS = peakRSS()
	return res, nil
}

// phaseTotals sums the phases of one kind.
type phaseTotals struct {
	images int
	wall   time.Duration
	cpu    time.Duration
}

func (p *phaseTotals) measure(run func() (float64, error), n int) (float64, error) {
	c0, t0 := cpuTime(), time.Now()
	rate, err := run()
	p.wall += time.Since(t0)
	p.cpu += cpuTime() - c0
	p.images += n
	return rate, err
}

func (p *phaseTotals) rate() float64 { return float64(p.images) / p.wall.Seconds() }

func (p *phaseTotals) cpuPerImage() time.Duration { return p.cpu / time.Duration(max(p.images, 1)) }

func minNonZero(a, b float64) float64 {
	if a == 0 {
		return b
	}
	return min(a, b)
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func writeBenchImages(cfg BenchConfig) ([]string, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	paths := make([]string, cfg.Distinct)
	for i := range paths {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, benchScene(cfg.Width, cfg.Height, uint64(i)), &jpeg.Options{Quality: 90}); err != nil {
			return nil, err
		}
		paths[i] = filepath.Join(cfg.Dir, fmt.Sprintf("bench-%03d.jpg", i))
		if err := os.WriteFile(paths[i], buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// benchScene is a camera-like frame: smooth gradients, a few bright parts and
// sensor noise, so JPEG decoding does realistic work.
func benchScene(w, h int, seed uint64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(seed, 11))
	cx, cy, r := rng.IntN(w), rng.IntN(h), 40+rng.IntN(h/3)
	for y := range h {
		for x := range w {
			o := img.PixOffset(x, y)
			v := 60 + 120*x/w + rng.IntN(24)
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < r*r {
				v = 220 - rng.IntN(24)
			}
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = uint8(v), uint8(v*y/h), uint8(255-v), 255
		}
	}
	return img
}

// benchTensors decodes and preprocesses every file once, for the raw runs.
func (s *Stage) benchTensors(paths []string) ([][]float32, error) {
	out := make([][]float32, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		img, err := Decode(data, s.opts.Limits)
		if err != nil {
			return nil, err
		}
		out[i] = Preprocess(img, s.opts.Preprocess, nil)
	}
	return out, nil
}

// runRaw embeds n images from pre-made tensors with the stage's inferers
// and batch size and returns images/s.
func (s *Stage) runRaw(ctx context.Context, tensors [][]float32, n int) (float64, error) {
	batch := s.opts.InferBatch
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, s.opts.Inferers)
	start := time.Now()
	for range s.opts.Inferers {
		wg.Go(func() {
			var in []float32
			for {
				first := int(next.Add(int64(batch))) - batch
				if first >= n {
					return
				}
				k := min(batch, n-first)
				in = in[:0]
				for j := range k {
					in = append(in, tensors[(first+j)%len(tensors)]...)
				}
				if _, err := s.model.Embed(ctx, in, k); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(n) / el.Seconds(), nil
}

// runPipeline stores n events whose images are the files, in batches of
// 256 as the service's consumer would hand them over, and returns images/s.
func (s *Stage) runPipeline(ctx context.Context, paths []string, n int) (float64, error) {
	run := time.Now().UTC()
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Weight: 1, Prediction: event.Prediction{
			EventID: fmt.Sprintf("bench-%d-%d", run.UnixNano(), i), TS: run, Model: "bench", ModelVersion: "v1",
			Source: "bench", Task: event.TaskClassification, ImageURI: "file://" + filepath.ToSlash(paths[i%len(paths)]),
			PredictedClass: "ok", Probs: event.Probs{{Class: "dent", Score: 0.1}, {Class: "ok", Score: 0.9}},
		}}
	}
	before := s.Stats().Insert.Images
	start := time.Now()
	for lo := 0; lo < n; lo += 256 {
		if err := s.Store(ctx, items[lo:min(lo+256, n)]); err != nil {
			return 0, err
		}
	}
	el := time.Since(start)
	if got := s.Stats().Insert.Images - before; got != int64(n) {
		return 0, fmt.Errorf("pipeline stored %d of %d embeddings", got, n)
	}
	return float64(n) / el.Seconds(), nil
}

func diffStats(a, b StageStats) StageStats {
	d := func(x, y StepStats) StepStats {
		return StepStats{Images: x.Images - y.Images, Total: x.Total - y.Total}
	}
	return StageStats{Fetch: d(a.Fetch, b.Fetch), Decode: d(a.Decode, b.Decode), Preprocess: d(a.Preprocess, b.Preprocess),
		Infer: d(a.Infer, b.Infer), Insert: d(a.Insert, b.Insert)}
}

// peakRSS is the process's high-water resident set size (Linux reports
// ru_maxrss in KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) * 1024
}
