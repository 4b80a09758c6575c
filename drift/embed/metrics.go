package embed

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StageMetrics measure the embedding stage.
type StageMetrics struct {
	images       *prometheus.CounterVec
	failures     *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	prepSeconds  prometheus.Histogram
	inferSeconds prometheus.Histogram
}

// NewStageMetrics registers the embedding metrics with reg (nil for none).
func NewStageMetrics(reg prometheus.Registerer) *StageMetrics {
	m := &StageMetrics{
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_embed_images_total",
			Help: "Sampled images by outcome (embedded, skipped).",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_embed_image_failures_total",
			Help: "Images skipped, by reason (not_found, forbidden, corrupt, too_large, unsupported_format, fetch_failed, canceled, other).",
		}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_embed_sampling_events_total",
			Help: "Prediction events seen by the embedding sampler, by decision (sampled, unsampled, rate_limited, invalid). rate_limited is sampled work dropped by embed.max_per_second.",
		}, []string{"decision"}),
		prepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lookout_embed_preprocess_duration_seconds",
			Help:    "Fetch, decode and preprocess time per image.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		inferSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lookout_embed_inference_duration_seconds",
			Help:    "Model time per image (batch time divided by batch size).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.images, m.failures, m.decisions, m.prepSeconds, m.inferSeconds)
	}
	return m
}

// StepStats is the cumulative wall time spent in one step of the pipeline.
type StepStats struct {
	// Images is how many images went through the step.
	Images int64
	// Total is the summed wall time of the step over those images (for
	// inference, the run time of each batch, counted once per batch).
	Total time.Duration
}

// PerImage is the mean wall time per image, 0 when no image passed.
func (s StepStats) PerImage() time.Duration {
	if s.Images == 0 {
		return 0
	}
	return s.Total / time.Duration(s.Images)
}

// StageStats is the cumulative time per pipeline step since the stage was
// made, for benchmarks and debugging (Prometheus has the histograms).
type StageStats struct {
	Fetch, Decode, Preprocess, Infer, Insert StepStats
}

type stepTimer struct{ nanos, n atomic.Int64 }

type stats struct{ fetch, decode, preprocess, infer, insert stepTimer }

func (s *stats) add(t *stepTimer, start time.Time, n int) {
	t.nanos.Add(int64(time.Since(start)))
	t.n.Add(int64(n))
}

func (t *stepTimer) load() StepStats {
	return StepStats{Images: t.n.Load(), Total: time.Duration(t.nanos.Load())}
}

// Stats returns the cumulative time per step.
func (s *Stage) Stats() StageStats {
	return StageStats{
		Fetch: s.stats.fetch.load(), Decode: s.stats.decode.load(), Preprocess: s.stats.preprocess.load(),
		Infer: s.stats.infer.load(), Insert: s.stats.insert.load(),
	}
}
