package embed

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/stream"
)

// StageOptions configure the embedding stage.
type StageOptions struct {
	// SampleRate is the share of events embedded, chosen by a hash of the
	// event_id so every instance and every replay picks the same events.
	SampleRate float64
	// Workers fetch, decode and preprocess images in parallel.
	Workers int
	// InferBatch is how many images go to the model per run.
	InferBatch int
	Preprocess PreprocessConfig
	Limits     Limits
}

// Stage embeds the sampled predictions' images and stores the vectors.
type Stage struct {
	model   *Model
	fetch   FileFetcher
	conn    driver.Conn
	opts    StageOptions
	metrics *StageMetrics
}

// NewStage returns the embedding stage. m may be nil for no metrics.
func NewStage(model *Model, fetch FileFetcher, conn driver.Conn, opts StageOptions, m *StageMetrics) *Stage {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.InferBatch < 1 {
		opts.InferBatch = 8
	}
	if m == nil {
		m = NewStageMetrics(nil)
	}
	if opts.Preprocess == (PreprocessConfig{}) {
		opts.Preprocess = DefaultPreprocess()
	}
	return &Stage{model: model, fetch: fetch, conn: conn, opts: opts, metrics: m}
}

// Check reports a preprocessing that does not fit the model, so the service
// refuses to start instead of failing on every image.
func (s *Stage) Check() error {
	if err := s.opts.Preprocess.Validate(); err != nil {
		return err
	}
	if s.opts.Preprocess.Crop != s.model.InputSize() {
		return fmt.Errorf("preprocess crop %d does not match the model input size %d", s.opts.Preprocess.Crop, s.model.InputSize())
	}
	return nil
}

// Sampled reports whether the event with this id is in the sample at rate.
func Sampled(eventID string, rate float64) bool {
	if rate >= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(eventID))
	return float64(h.Sum64())/math.MaxUint64 < rate
}

// Stream returns the stage for a stream consumer of the predictions topic.
// Unsampled and invalid events are skipped: the ingest stage owns the
// dead-letter topic, so this stage only has to ignore them.
func (s *Stage) Stream() stream.Stage[event.Prediction] {
	return stream.Stage[event.Prediction]{
		Name: "embed",
		Decode: func(msg kafka.Message) (event.Prediction, bool, error) {
			// The key is the event_id by contract: decide before parsing JSON.
			if len(msg.Key) > 0 && !Sampled(string(msg.Key), s.opts.SampleRate) {
				return event.Prediction{}, false, nil
			}
			p, err := event.DecodePrediction(msg.Value)
			if err != nil || !Sampled(p.EventID, s.opts.SampleRate) {
				return event.Prediction{}, false, nil
			}
			return p, true, nil
		},
		Store: s.Store,
	}
}

// prepared is one image ready for the model.
type prepared struct {
	p      *event.Prediction
	pixels []float32
}

// Store embeds the images of items and inserts the vectors. Images that cannot
// be fetched or decoded are skipped and counted by reason; only a failure to
// run the model or to insert makes the batch fail (and be retried).
func (s *Stage) Store(ctx context.Context, items []event.Prediction) error {
	ready := s.prepare(ctx, items)
	if err := ctx.Err(); err != nil {
		return err
	}
	vectors := make([][]float32, 0, len(ready))
	for start := 0; start < len(ready); start += s.opts.InferBatch {
		chunk := ready[start:min(start+s.opts.InferBatch, len(ready))]
		vs, err := s.infer(ctx, chunk)
		if err != nil {
			return err
		}
		vectors = append(vectors, vs...)
	}
	if err := s.insert(ctx, ready, vectors); err != nil {
		return err
	}
	s.metrics.images.WithLabelValues("embedded").Add(float64(len(ready)))
	return nil
}

func (s *Stage) prepare(ctx context.Context, items []event.Prediction) []prepared {
	out := make([]prepared, len(items))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(s.opts.Workers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = s.prepareOne(ctx, &items[i])
			}
		}()
	}
	for i := range items {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	kept := out[:0]
	for _, p := range out {
		if p.pixels != nil {
			kept = append(kept, p)
		}
	}
	return kept
}

func (s *Stage) prepareOne(ctx context.Context, p *event.Prediction) prepared {
	start := time.Now()
	data, err := s.fetch.Fetch(ctx, p.ImageURI)
	if err == nil {
		img, derr := Decode(data, s.opts.Limits)
		if err = derr; err == nil {
			px := Preprocess(img, s.opts.Preprocess, nil)
			s.metrics.prepSeconds.Observe(time.Since(start).Seconds())
			return prepared{p: p, pixels: px}
		}
	}
	if ctx.Err() == nil {
		s.metrics.images.WithLabelValues("skipped").Inc()
		s.metrics.failures.WithLabelValues(Reason(err)).Inc()
	}
	return prepared{}
}

func (s *Stage) infer(ctx context.Context, chunk []prepared) ([][]float32, error) {
	size := len(chunk[0].pixels)
	pixels := make([]float32, 0, size*len(chunk))
	for _, c := range chunk {
		pixels = append(pixels, c.pixels...)
	}
	start := time.Now()
	vs, err := s.model.Embed(ctx, pixels, len(chunk))
	if err != nil {
		return nil, fmt.Errorf("embed %d images: %w", len(chunk), err)
	}
	s.metrics.inferSeconds.Observe(time.Since(start).Seconds() / float64(len(chunk)))
	return vs, nil
}

func (s *Stage) insert(ctx context.Context, ready []prepared, vectors [][]float32) error {
	if len(ready) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO embeddings")
	if err != nil {
		return fmt.Errorf("prepare insert of %d embeddings: %w", len(ready), err)
	}
	now := time.Now().UTC()
	weight := float32(1 / max(s.opts.SampleRate, 1e-9))
	id := s.model.ID()
	for i, r := range ready {
		p := r.p
		sc := p.Scores()
		if err := batch.Append(p.EventID, p.TS.UTC(), uint64(p.TS.UnixMilli()), p.Model, p.ModelVersion, p.Source,
			p.PredictedClass, float32(sc.Confidence), id, weight, vectors[i], now); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append embedding %q: %w", p.EventID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert batch of %d embeddings: %w", len(ready), err)
	}
	return nil
}

// StageMetrics measure the embedding stage.
type StageMetrics struct {
	images       *prometheus.CounterVec
	failures     *prometheus.CounterVec
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
			Help: "Images skipped, by reason (not_found, forbidden, corrupt, too_large, unsupported_format, other).",
		}, []string{"reason"}),
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
		reg.MustRegister(m.images, m.failures, m.prepSeconds, m.inferSeconds)
	}
	return m
}
