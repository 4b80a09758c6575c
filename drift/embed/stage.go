package embed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/stream"
)

// Fetcher returns the encoded bytes of the image named by uri. FileFetcher,
// HTTPFetcher and Fetchers implement it.
type Fetcher interface {
	Fetch(ctx context.Context, uri string) ([]byte, error)
}

// StageOptions configure the embedding stage.
type StageOptions struct {
	// Sampling decides which events are embedded and with what weight. The
	// zero value embeds every event (rate 1).
	Sampling SamplingConfig
	// Workers fetch, decode and preprocess images in parallel, overlapped
	// with inference.
	Workers int
	// Inferers is the number of concurrent Run calls on the shared ONNX
	// Runtime session (each using IntraOpThreads threads); 1 by default.
	Inferers int
	// InferBatch is how many images go to the model per run; 1 by default,
	// since on a few cores batching adds latency and memory but no speed.
	InferBatch int
	Preprocess PreprocessConfig
	Limits     Limits
}

// Item is a prediction chosen for embedding, with its sampling weight.
type Item struct {
	event.Prediction
	// Weight is 1 / the probability that the event was sampled, so a
	// weighted statistic over the sample estimates the whole stream
	// (Horvitz–Thompson). 0 is read as 1.
	Weight float64
}

// Stage embeds the sampled predictions' images and stores the vectors. Per
// batch it runs a pipeline: Workers goroutines fetch, decode and preprocess
// images into a bounded channel while Inferers goroutines run the model on
// what is ready, so the model never waits for image work it could overlap.
type Stage struct {
	model   *Model
	fetch   Fetcher
	conn    driver.Conn
	opts    StageOptions
	metrics *StageMetrics
	sampler *Sampler
	stats   stats
	pixels  sync.Pool // *[]float32 of one preprocessed image
}

// NewStage returns the embedding stage. m may be nil for no metrics.
func NewStage(model *Model, fetch Fetcher, conn driver.Conn, opts StageOptions, m *StageMetrics) *Stage {
	opts.Workers = max(opts.Workers, 1)
	opts.Inferers = max(opts.Inferers, 1)
	opts.InferBatch = max(opts.InferBatch, 1)
	if m == nil {
		m = NewStageMetrics(nil)
	}
	if opts.Preprocess == (PreprocessConfig{}) {
		opts.Preprocess = DefaultPreprocess()
	}
	return &Stage{model: model, fetch: fetch, conn: conn, opts: opts, metrics: m,
		sampler: NewSampler(opts.Sampling, m)}
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
	return s.opts.Sampling.Validate()
}

// Model returns the stage's model.
func (s *Stage) Model() *Model { return s.model }

// Stream returns the stage for a stream consumer of the predictions topic.
// Unsampled and invalid events are skipped: the ingest stage owns the
// dead-letter topic, so this stage only has to ignore them.
func (s *Stage) Stream() stream.Stage[Item] {
	return stream.Stage[Item]{
		Name: "embed",
		Decode: func(msg kafka.Message) (Item, bool, error) {
			if s.sampler.Skip(msg.Key) {
				return Item{}, false, nil
			}
			p, err := event.DecodePrediction(msg.Value)
			if err != nil {
				s.metrics.decisions.WithLabelValues("invalid").Inc()
				return Item{}, false, nil
			}
			w, ok := s.sampler.Decide(&p, time.Now())
			if !ok {
				return Item{}, false, nil
			}
			return Item{Prediction: p, Weight: w}, true, nil
		},
		Store: s.Store,
	}
}

// Store embeds the images of items and inserts the vectors. Images that cannot
// be fetched or decoded are skipped and counted by reason; only a failure to
// run the model or to insert makes the batch fail (and be retried).
func (s *Stage) Store(ctx context.Context, items []Item) error {
	vecs, err := s.Embed(ctx, items)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := s.insert(ctx, items, vecs)
	if err != nil {
		return err
	}
	s.stats.add(&s.stats.insert, start, n)
	s.metrics.images.WithLabelValues("embedded").Add(float64(n))
	return nil
}

// prepared is one image ready for the model.
type prepared struct {
	idx    int
	pixels *[]float32
}

// Embed returns the L2-normalised embedding of each item's image, nil for
// images that could not be fetched or decoded (counted by reason). It fails
// only if the model fails or ctx ends.
func (s *Stage) Embed(ctx context.Context, items []Item) ([][]float32, error) {
	vecs := make([][]float32, len(items))
	if len(items) == 0 {
		return vecs, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Bounded: at most this many preprocessed images (600 KB each at 224)
	// wait for the model, enough that it never starves.
	ready := make(chan prepared, s.opts.Workers+s.opts.Inferers*s.opts.InferBatch)
	jobs := make(chan int)
	var producers, inferers sync.WaitGroup
	producers.Go(func() {
		defer close(jobs)
		for i := range items {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range min(s.opts.Workers, len(items)) {
		producers.Go(func() { s.prepareLoop(ctx, items, jobs, ready) })
	}
	for range s.opts.Inferers {
		inferers.Go(func() {
			if err := s.inferLoop(ctx, ready, vecs); err != nil {
				cancel(err)
			}
		})
	}
	producers.Wait()
	close(ready)
	inferers.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return vecs, nil
}

func (s *Stage) prepareLoop(ctx context.Context, items []Item, jobs <-chan int, ready chan<- prepared) {
	for i := range jobs {
		px, ok := s.prepareOne(ctx, &items[i])
		if !ok {
			continue
		}
		select {
		case ready <- prepared{idx: i, pixels: px}:
		case <-ctx.Done():
			s.pixels.Put(px)
			return
		}
	}
}

// prepareOne fetches, decodes and preprocesses one image, timing each step.
func (s *Stage) prepareOne(ctx context.Context, it *Item) (*[]float32, bool) {
	t0 := time.Now()
	data, err := s.fetch.Fetch(ctx, it.ImageURI)
	t1 := time.Now()
	s.stats.add(&s.stats.fetch, t0, 1)
	if err == nil {
		img, derr := Decode(data, s.opts.Limits)
		t2 := time.Now()
		s.stats.add(&s.stats.decode, t1, 1)
		if err = derr; err == nil {
			px := s.buffer()
			*px = Preprocess(img, s.opts.Preprocess, *px)
			s.stats.add(&s.stats.preprocess, t2, 1)
			s.metrics.prepSeconds.Observe(time.Since(t0).Seconds())
			return px, true
		}
	}
	if ctx.Err() == nil {
		s.metrics.images.WithLabelValues("skipped").Inc()
		s.metrics.failures.WithLabelValues(Reason(err)).Inc()
	}
	return nil, false
}

func (s *Stage) buffer() *[]float32 {
	if p, ok := s.pixels.Get().(*[]float32); ok {
		return p
	}
	px := make([]float32, 0, 3*s.opts.Preprocess.Crop*s.opts.Preprocess.Crop)
	return &px
}

// inferLoop runs the model on chunks of up to InferBatch ready images until
// ready is closed.
func (s *Stage) inferLoop(ctx context.Context, ready <-chan prepared, vecs [][]float32) error {
	chunk := make([]prepared, 0, s.opts.InferBatch)
	var batch []float32 // reused contiguous input when InferBatch > 1
	for {
		chunk = chunk[:0]
		for len(chunk) < s.opts.InferBatch {
			p, ok := <-ready
			if !ok {
				break
			}
			chunk = append(chunk, p)
		}
		if len(chunk) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		var pixels []float32
		if len(chunk) == 1 {
			pixels = *chunk[0].pixels
		} else {
			batch = batch[:0]
			for _, c := range chunk {
				batch = append(batch, *c.pixels...)
			}
			pixels = batch
		}
		start := time.Now()
		vs, err := s.model.Embed(ctx, pixels, len(chunk))
		if err != nil {
			return fmt.Errorf("embed %d images: %w", len(chunk), err)
		}
		s.stats.add(&s.stats.infer, start, len(chunk))
		s.metrics.inferSeconds.Observe(time.Since(start).Seconds() / float64(len(chunk)))
		for j, c := range chunk {
			vecs[c.idx] = vs[j]
			s.pixels.Put(c.pixels)
		}
	}
}

func (s *Stage) insert(ctx context.Context, items []Item, vecs [][]float32) (int, error) {
	n := 0
	for _, v := range vecs {
		if v != nil {
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO embeddings")
	if err != nil {
		return 0, fmt.Errorf("prepare insert of %d embeddings: %w", n, err)
	}
	now := time.Now().UTC()
	id := s.model.ID()
	for i := range items {
		if vecs[i] == nil {
			continue
		}
		p := &items[i]
		sc := p.Scores()
		w := p.Weight
		if w <= 0 {
			w = 1
		}
		if err := batch.Append(p.EventID, p.TS.UTC(), uint64(p.TS.UnixMilli()), p.Model, p.ModelVersion, p.Source,
			p.PredictedClass, float32(sc.Confidence), id, float32(w), vecs[i], now); err != nil {
			_ = batch.Abort()
			return 0, fmt.Errorf("append embedding %q: %w", p.EventID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return 0, fmt.Errorf("insert batch of %d embeddings: %w", n, err)
	}
	return n, nil
}
