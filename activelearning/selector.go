package activelearning

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/activelearning/score"
	"github.com/lookout-dev/lookout/activelearning/selection"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/store"
)

// Options configure selection runs.
type Options struct {
	Window time.Duration
	Filter Filter
	// RunSize is the most one run picks; DailyBudget caps the UTC day.
	RunSize, DailyBudget int
	MaxCandidates        int
	PoolFactor           int
	Uncertainty          score.Measure
	DisagreementWeight   float64
	ForeignnessWeight    float64
	ConfidentBoxScore    float64
	DuplicateDistance    float64
	ClassQuota           float64
	SourceQuota          float64
	MaxSeeds             int
	// RequireEmbedding keeps only embedded images: only they can be checked
	// for near-duplicates.
	RequireEmbedding bool
}

// OptionsFromConfig maps the activelearning configuration section.
func OptionsFromConfig(c config.ActiveLearning) Options {
	return Options{
		Window:  c.Window,
		Filter:  Filter{Models: c.Models, Versions: c.Versions, Sources: c.Sources, Classes: c.Classes},
		RunSize: c.RunSize, DailyBudget: c.DailyBudget, MaxCandidates: c.MaxCandidates, PoolFactor: c.PoolFactor,
		Uncertainty: score.Measure(c.Uncertainty), DisagreementWeight: c.DisagreementWeight,
		ForeignnessWeight: c.ForeignnessWeight, ConfidentBoxScore: c.ConfidentBoxScore,
		DuplicateDistance: c.DuplicateDistance, ClassQuota: c.ClassQuota, SourceQuota: c.SourceQuota,
		MaxSeeds: c.MaxSeeds, RequireEmbedding: true,
	}
}

// Selector runs selections against ClickHouse.
type Selector struct {
	conn driver.Conn
	opts Options
	log  *slog.Logger
	// Foreignness, when set, replaces the drift-job signals read per run.
	Foreignness score.Foreignness
	// Now is the clock (tests); default time.Now.
	Now     func() time.Time
	metrics *selectorMetrics
}

// NewSelector returns a selector; reg (nil for none) receives its metrics.
func NewSelector(conn driver.Conn, opts Options, log *slog.Logger, reg prometheus.Registerer) *Selector {
	return &Selector{conn: conn, opts: opts, log: log, Now: time.Now, metrics: newSelectorMetrics(reg)}
}

// Result describes one run.
type Result struct {
	SelectionID string
	// Budget is what this run was allowed to pick (run size, or what is left
	// of the day's budget).
	Budget     int
	Candidates int
	Picks      []queue.Item
	Duration   time.Duration
}

// Run picks and stores one selection. With dryRun it stores nothing.
func (s *Selector) Run(ctx context.Context, dryRun bool) (Result, error) {
	start := time.Now()
	now := s.Now().UTC()
	res := Result{SelectionID: now.Format("20060102T150405Z") + "-" + randomHex(3)}
	day := now.Truncate(24 * time.Hour)
	used, err := picksSince(ctx, s.conn, day)
	if err != nil {
		return res, err
	}
	res.Budget = min(s.opts.RunSize, s.opts.DailyBudget-used)
	if res.Budget <= 0 {
		s.log.Info("daily labelling budget used up; nothing picked", "budget", s.opts.DailyBudget, "picked_today", used)
		res.Budget = 0
		return res, nil
	}
	embedder, err := store.LatestEmbedder(ctx, s.conn, "1")
	if err != nil {
		return res, err
	}
	from, to := now.Add(-s.opts.Window), now.Add(time.Second)
	cands, err := readCandidates(ctx, s.conn, s.opts.Filter, from, to, embedder, s.opts.RequireEmbedding, s.opts.MaxCandidates)
	if err != nil {
		return res, err
	}
	res.Candidates = len(cands)
	readDone := time.Now()
	foreign := s.Foreignness
	if foreign == nil {
		if foreign, err = DriftSignals(ctx, s.conn, now.Add(-s.opts.Window)); err != nil {
			return res, err
		}
	}
	cands = s.score(cands, foreign)
	scored := time.Now()
	picks, err := s.choose(ctx, cands, embedder, from, to, res.Budget)
	if err != nil {
		return res, err
	}
	s.log.Debug("selection phases", "read_candidates", readDone.Sub(start), "score", scored.Sub(readDone),
		"embeddings_and_select", time.Since(scored))
	res.Picks = s.items(picks, res.SelectionID, embedder, now)
	if !dryRun {
		if err := queue.InsertPicks(ctx, s.conn, res.Picks); err != nil {
			return res, err
		}
	}
	res.Duration = time.Since(start)
	s.metrics.observe(res)
	s.log.Info("selection run", "selection", res.SelectionID, "candidates", res.Candidates, "picked", len(res.Picks),
		"budget", res.Budget, "dry_run", dryRun, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

// choose keeps the pool of top-scored candidates, loads their embeddings and
// the seeds, and runs the diversity-aware selection.
func (s *Selector) choose(ctx context.Context, cands []*candidate, embedder string, from, to time.Time, budget int) ([]*candidate, error) {
	start := time.Now()
	slices.SortStableFunc(cands, func(a, b *candidate) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.EventID, b.EventID)
	})
	pool := cands[:min(len(cands), s.opts.PoolFactor*budget)]
	if err := loadEmbeddings(ctx, s.conn, embedder, from, to, pool); err != nil {
		return nil, err
	}
	seeds, err := readSeeds(ctx, s.conn, embedder, s.opts.MaxSeeds)
	if err != nil {
		return nil, err
	}
	loaded := time.Now()
	in := make([]selection.Candidate, len(pool))
	for i, c := range pool {
		in[i] = selection.Candidate{EventID: c.EventID, Class: c.Class, Source: c.Source, Score: c.score, Embedding: c.Embedding}
	}
	picks := selection.Select(in, seeds, selection.Options{Budget: budget, PoolFactor: s.opts.PoolFactor,
		DuplicateDistance: s.opts.DuplicateDistance, ClassQuota: s.opts.ClassQuota, SourceQuota: s.opts.SourceQuota})
	s.log.Debug("selection step", "pool", len(pool), "seeds", len(seeds), "load_embeddings_and_seeds",
		loaded.Sub(start), "select", time.Since(loaded))
	if len(picks) < budget/2 && len(pool) >= 2*budget {
		// A pool this size running dry usually means the threshold does not
		// fit the embedder's geometry (a small model packs images closely).
		s.log.Warn("selection found few non-duplicate items: check activelearning.duplicate_distance against the embedder",
			"picked", len(picks), "pool", len(pool), "duplicate_distance", s.opts.DuplicateDistance,
			"median_pool_distance", medianNeighbourDistance(pool))
	}
	out := make([]*candidate, len(picks))
	for i, p := range picks {
		c := pool[p.Index]
		c.scores = append(c.scores, namedScore{"novelty", min(p.Novelty, 4)}, namedScore{"priority", p.Priority})
		if len(seeds) > 0 || i > 0 {
			c.reasons = append(c.reasons, "novel")
		}
		out[i] = c
	}
	return out, nil
}

// score computes every candidate's scores and combined score. Predictions of
// the same image by different arms collapse into one candidate (the stable
// arm's when there is one) carrying their disagreement.
func (s *Selector) score(cands []*candidate, foreign score.Foreignness) []*candidate {
	byImage := map[string][]*candidate{}
	for _, c := range cands {
		byImage[c.ImageURI] = append(byImage[c.ImageURI], c)
	}
	out := make([]*candidate, 0, len(cands))
	for _, group := range byImage {
		slices.SortFunc(group, func(a, b *candidate) int {
			return cmp.Or(cmp.Compare(armRank(a.Arm), armRank(b.Arm)), cmp.Compare(a.EventID, b.EventID))
		})
		c := group[0]
		s.scoreOne(c, foreign)
		for _, other := range group[1:] {
			if other.Arm != c.Arm {
				d := score.Disagreement(output(c), output(other))
				c.scores = append(c.scores, namedScore{"disagreement", d})
				c.score += s.opts.DisagreementWeight * d
				if d >= 0.5 {
					c.reasons = append(c.reasons, "arms_disagree:"+other.Arm+"="+other.Class)
				}
				break
			}
		}
		out = append(out, c)
	}
	return out
}

func armRank(arm string) int {
	switch arm {
	case event.ArmStable, "":
		return 0
	case event.ArmCanary:
		return 1
	}
	return 2
}

func output(c *candidate) score.Output {
	return score.Output{PredictedClass: c.Class, Classes: c.ProbClasses, Probs: c.ProbValues}
}

func (s *Selector) scoreOne(c *candidate, foreign score.Foreignness) {
	var u float64
	if c.Task == event.TaskDetection {
		d := score.Detect(c.BoxScores, s.opts.ConfidentBoxScore)
		u = d.Uncertainty
		c.scores = append(c.scores, namedScore{"box_mean", d.Mean}, namedScore{"box_min", d.Min})
		if d.NoConfidentBox {
			c.reasons = append(c.reasons, "no_confident_box")
		}
	} else {
		k := score.Classify(c.ProbValues, len(c.ProbClasses))
		u = k.Pick(s.opts.Uncertainty)
		c.scores = append(c.scores, namedScore{"least_confidence", k.LeastConfidence},
			namedScore{"margin", k.Margin}, namedScore{"entropy", k.Entropy})
	}
	c.scores = append(c.scores, namedScore{"uncertainty", u})
	if u > 0 {
		c.reasons = append(c.reasons, "uncertain:"+string(s.opts.Uncertainty)+"="+strconv.FormatFloat(u, 'f', 2, 64))
	}
	c.score = u
	if foreign != nil {
		f := foreign.Foreignness(score.Subject{EventID: c.EventID, Model: c.Model, ModelVersion: c.Version,
			Source: c.Source, Embedding: c.Embedding})
		if f > 0 {
			c.scores = append(c.scores, namedScore{"foreignness", f})
			c.reasons = append(c.reasons, "drifted_domain")
			c.score += s.opts.ForeignnessWeight * f
		}
	}
}

func (s *Selector) items(picks []*candidate, selectionID, embedder string, now time.Time) []queue.Item {
	out := make([]queue.Item, len(picks))
	for i, c := range picks {
		it := queue.Item{EventID: c.EventID, SelectionID: selectionID, PickedAt: now, Rank: uint32(i),
			Model: c.Model, ModelVersion: c.Version, Source: c.Source, Task: c.Task, Arm: c.Arm, ImageURI: c.ImageURI,
			PredictedClass: c.Class, ProbClasses: c.ProbClasses, ProbValues: c.ProbValues, BoxClasses: c.BoxClasses,
			BoxScores: c.BoxScores, BoxXYXY: c.BoxXYXY, Score: c.score, Reasons: c.reasons}
		if c.Embedding != nil {
			it.Embedder = embedder
		}
		for _, sc := range c.scores {
			it.ScoreNames = append(it.ScoreNames, sc.name)
			it.ScoreValues = append(it.ScoreValues, float32(sc.value))
		}
		out[i] = it
	}
	return out
}

// Schedule runs a selection every interval until ctx ends. Failures are
// logged and the next interval tries again.
func (s *Selector) Schedule(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Run(ctx, false); err != nil && ctx.Err() == nil {
			s.metrics.failures.Inc()
			s.log.Error("selection run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type selectorMetrics struct {
	picked   prometheus.Counter
	failures prometheus.Counter
	duration prometheus.Histogram
	cands    prometheus.Gauge
}

func newSelectorMetrics(reg prometheus.Registerer) *selectorMetrics {
	m := &selectorMetrics{
		picked: prometheus.NewCounter(prometheus.CounterOpts{Name: "lookout_al_selected_items_total",
			Help: "Items picked by selection runs."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "lookout_al_selection_failures_total",
			Help: "Scheduled selection runs that failed."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lookout_al_selection_duration_seconds",
			Help: "Wall time of a selection run.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		cands: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lookout_al_selection_candidates",
			Help: "Candidates the last selection run considered."}),
	}
	if reg != nil {
		reg.MustRegister(m.picked, m.failures, m.duration, m.cands)
	}
	return m
}

func (m *selectorMetrics) observe(r Result) {
	m.picked.Add(float64(len(r.Picks)))
	m.duration.Observe(r.Duration.Seconds())
	m.cands.Set(float64(r.Candidates))
}

// medianNeighbourDistance is the median squared distance between pool items
// i and i+1 (pool order is by score, so these are unrelated images).
func medianNeighbourDistance(pool []*candidate) float64 {
	var d []float64
	for i := 0; i+1 < len(pool) && len(d) < 1000; i++ {
		a, b := pool[i].Embedding, pool[i+1].Embedding
		if len(a) > 0 && len(a) == len(b) {
			d = append(d, selection.SqDist(a, b))
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
