package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// Annotator is the annotator name on every simulated label, so real and
// simulated labels can be told apart in the accuracy metrics.
const Annotator = "simulator"

// How the simulated classifier behaves. Under normal conditions it is the
// model that passed validation: right almost always and sure of itself.
// Under the shift it is the model in production after the lamp failed:
// right only about half the time, unsure, and wrong in a biased way.
const (
	normalAccuracy  = 0.95
	shiftedAccuracy = 0.50
	// biasedErrors is the share of shifted errors that go to shiftConfusions
	// rather than to any other class.
	biasedErrors = 0.85
)

// Confidence ranges of the predicted class's probability.
var (
	normalConfidence  = [2]float64{0.80, 0.99}
	shiftedConfidence = [2]float64{0.35, 0.70}
)

// Stream constants of the PCG generators: distinct streams so event ids can
// never correlate with the traffic they label.
const (
	trafficStream = 0x6c6f6f6b6f7574 // "lookout"
	idStream      = 0x6576656e742d6964
)

// Generator simulates a fleet of cameras and the classifier judging their
// pictures. It is safe for concurrent use; Run and Next share one stream.
type Generator struct {
	cfg       Config
	pool      pool
	mixes     [][]float64 // cumulative true-class weights per source
	confusion []float64   // cumulative weights over Classes for biased errors

	mu      sync.Mutex
	rng     *rand.Rand
	ids     *rand.Rand
	seq     int
	start   time.Time
	started bool
}

// NewGenerator applies defaults to cfg, validates it and renders the picture
// pool below cfg.ImageDir (pictures already there are kept). A zero
// ShiftAfter means shifted from the start and a zero LabelFraction no labels:
// build cfg from DefaultConfig to get the demo's values (see Config).
func NewGenerator(cfg Config) (*Generator, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.ImageDir)
	if err != nil {
		return nil, fmt.Errorf("simulate: image_dir: %w", err)
	}
	cfg.ImageDir = dir
	cfg.Sources = slices.Clone(cfg.Sources)
	p, err := buildPool(cfg, dir)
	if err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:       cfg,
		pool:      p,
		confusion: confusionWeights(),
		rng:       rand.New(rand.NewPCG(uint64(cfg.Seed), trafficStream)),
	}
	for _, s := range cfg.Sources {
		g.mixes = append(g.mixes, classMix(s, Classes))
	}
	return g, nil
}

func confusionWeights() []float64 {
	w := make([]float64, len(Classes))
	for _, c := range shiftConfusions {
		w[classIndex(Classes, c.class)] = c.weight
	}
	return w
}

// Config returns the effective configuration, defaults applied and ImageDir
// made absolute.
func (g *Generator) Config() Config {
	c := g.cfg
	c.Sources = slices.Clone(c.Sources)
	return c
}

// Shifted reports whether source is in the shifted condition at now. The
// simulation's clock starts with the first event Next produces; before that,
// only a ShiftAfter of 0 counts as shifted.
func (g *Generator) Shifted(source string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shifted(source, now)
}

func (g *Generator) shifted(source string, now time.Time) bool {
	if g.cfg.ShiftAfter < 0 || source != g.cfg.ShiftSource {
		return false
	}
	if !g.started {
		return g.cfg.ShiftAfter == 0
	}
	return !now.Before(g.start.Add(g.cfg.ShiftAfter))
}

// startClock anchors the shift schedule and the event-id stream at the
// first event. Seeding ids with that time keeps them reproducible for a
// given sequence of timestamps, yet a demo restarted with the same seed does
// not reuse the ids it already published.
func (g *Generator) startClock(now time.Time) {
	if g.started {
		return
	}
	g.started, g.start = true, now
	g.ids = rand.New(rand.NewPCG(uint64(g.cfg.Seed)^idStream, uint64(now.UnixNano())))
}

// Next produces the prediction for the next picture, taken at now, and a
// ground-truth label for it when the annotator samples it (nil otherwise).
// Sources take turns, so every camera gets the same share of traffic.
func (g *Generator) Next(now time.Time) (event.Prediction, *event.Label) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.startClock(now)
	s := g.seq % len(g.cfg.Sources)
	g.seq++
	source := g.cfg.Sources[s]
	shifted := g.shifted(source, now)
	truth := pick(g.rng, g.mixes[s])
	p := event.Prediction{
		SchemaVersion: event.SchemaVersion,
		EventID:       g.eventID(),
		TS:            now,
		Model:         g.cfg.Model,
		ModelVersion:  g.cfg.ModelVersion,
		Source:        source,
		Task:          event.TaskClassification,
		ImageURI:      g.picture(s, shifted, truth),
		Arm:           event.ArmStable,
	}
	pred, probs := g.classify(truth, shifted)
	p.PredictedClass, p.Probs = Classes[pred], event.ProbsOf(probs)
	latency := g.latency()
	p.LatencyMS = &latency
	return p, g.label(p, truth)
}

// eventID is a random 128-bit hex string, unique in practice.
func (g *Generator) eventID() string {
	return fmt.Sprintf("%016x%016x", g.ids.Uint64(), g.ids.Uint64())
}

// picture picks one of the pool's pictures of the true class as the camera
// currently sees it.
func (g *Generator) picture(s int, shifted bool, class int) string {
	cond := 0
	if shifted {
		cond = 1
	}
	uris := g.pool[s][cond][class]
	return uris[g.rng.IntN(len(uris))]
}

// label samples the annotator: it always gives the true class, which is what
// lets lookout measure the classifier's real accuracy.
func (g *Generator) label(p event.Prediction, truth int) *event.Label {
	if g.rng.Float64() >= g.cfg.LabelFraction {
		return nil
	}
	return &event.Label{
		SchemaVersion: event.SchemaVersion,
		EventID:       p.EventID,
		Label:         Classes[truth],
		Annotator:     Annotator,
		TS:            p.TS,
	}
}

// latency is an inference time in ms: mostly ~10 ms with an occasional slow
// call, as GPU servers show under load.
func (g *Generator) latency() float64 {
	ms := 8 + 3*math.Abs(g.rng.NormFloat64())
	if g.rng.Float64() < 0.02 {
		ms += 20 + 60*g.rng.Float64()
	}
	return math.Round(ms*100) / 100
}
