package config

import (
	"errors"
	"fmt"
	"time"
)

// ActiveLearning configures selection and the labelling queue (lookout al).
type ActiveLearning struct {
	// Listen is the address of the queue's HTTP API (al serve), which also
	// serves /metrics for the al_* metrics.
	Listen string `yaml:"listen"`
	// Schedule turns on the periodic selection inside al serve. Only the one
	// queue owner selects, so picks and the queue never race.
	Schedule bool          `yaml:"schedule"`
	Interval time.Duration `yaml:"interval"`
	// Window is how far back candidates are read, ending now.
	Window time.Duration `yaml:"window"`
	// Filters; empty means any.
	Models   []string `yaml:"models"`
	Versions []string `yaml:"versions"`
	Sources  []string `yaml:"sources"`
	Classes  []string `yaml:"classes"`
	// RunSize is the most items one selection run picks; DailyBudget caps all
	// picks of a UTC day.
	RunSize     int `yaml:"run_size"`
	DailyBudget int `yaml:"daily_budget"`
	// MaxCandidates bounds how many predictions one run reads; PoolFactor ×
	// run size of the most uncertain go through the diversity step.
	MaxCandidates int `yaml:"max_candidates"`
	PoolFactor    int `yaml:"pool_factor"`
	// Uncertainty is entropy, margin or least_confidence.
	Uncertainty        string  `yaml:"uncertainty"`
	DisagreementWeight float64 `yaml:"disagreement_weight"`
	ForeignnessWeight  float64 `yaml:"foreignness_weight"`
	// ConfidentBoxScore: a detection with no box at least this sure is flagged
	// no_confident_box.
	ConfidentBoxScore float64 `yaml:"confident_box_score"`
	// DuplicateDistance is the squared L2 distance between unit embeddings
	// below which two images count as near-duplicates (0.05 ≈ cosine 0.975).
	DuplicateDistance float64 `yaml:"duplicate_distance"`
	// ClassQuota and SourceQuota cap the share of one run's picks that one
	// predicted class or one source may take (1 = no cap).
	ClassQuota  float64 `yaml:"class_quota"`
	SourceQuota float64 `yaml:"source_quota"`
	// MaxSeeds bounds the queued/labelled items whose embeddings seed the
	// diversity step (the newest are kept).
	MaxSeeds int `yaml:"max_seeds"`
	// LeaseTimeout is how long an annotator holds fetched items; MaxSkips
	// skips by different annotators discard an item.
	LeaseTimeout time.Duration `yaml:"lease_timeout"`
	MaxSkips     int           `yaml:"max_skips"`
	// OwnerTTL: al serve refuses to start while another owner heartbeated
	// within this time (see activelearning/queue).
	OwnerTTL    time.Duration `yaml:"owner_ttl"`
	LabelStudio LabelStudio   `yaml:"labelstudio"`
}

// LabelStudio configures the Label Studio integration. Token and
// WebhookSecret may come from *_file instead (read by the al command).
type LabelStudio struct {
	URL               string `yaml:"url"`
	ProjectID         int    `yaml:"project_id"`
	Token             Secret `yaml:"token"`
	TokenFile         string `yaml:"token_file"`
	WebhookSecret     Secret `yaml:"webhook_secret"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// ImageURLPrefix replaces file:// image URIs' root so Label Studio can
	// fetch them (e.g. https://images.example/); empty keeps the URI.
	ImageURLPrefix string `yaml:"image_url_prefix"`
	// FromName and ToName are the control and object tags of the project's
	// labelling config (<Choices name="class" toName="image">).
	FromName string `yaml:"from_name"`
	ToName   string `yaml:"to_name"`
	// PollInterval is how often al serve reads the project's export API for
	// annotations the webhook may have missed (0 = webhook only).
	PollInterval time.Duration `yaml:"poll_interval"`
	// LeaseFor is how long items pushed to Label Studio stay leased to it.
	LeaseFor time.Duration `yaml:"lease_for"`
}

func defaultActiveLearning() ActiveLearning {
	return ActiveLearning{
		Listen:             "127.0.0.1:9466",
		Schedule:           false,
		Interval:           time.Hour,
		Window:             24 * time.Hour,
		RunSize:            200,
		DailyBudget:        1000,
		MaxCandidates:      200000,
		PoolFactor:         10,
		Uncertainty:        "entropy",
		DisagreementWeight: 0.5,
		ForeignnessWeight:  0.3,
		ConfidentBoxScore:  0.5,
		DuplicateDistance:  0.05,
		ClassQuota:         0.3,
		SourceQuota:        0.5,
		MaxSeeds:           5000,
		LeaseTimeout:       10 * time.Minute,
		MaxSkips:           2,
		OwnerTTL:           30 * time.Second,
		LabelStudio: LabelStudio{FromName: "class", ToName: "image", PollInterval: time.Minute,
			LeaseFor: 7 * 24 * time.Hour},
	}
}

func (a *ActiveLearning) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Listen == "" {
		bad("activelearning.listen must not be empty")
	}
	if a.Interval <= 0 || a.Window <= 0 || a.LeaseTimeout <= 0 || a.OwnerTTL <= 0 {
		bad("activelearning: interval, window, lease_timeout and owner_ttl must be > 0")
	}
	if a.RunSize < 1 || a.DailyBudget < 1 || a.MaxCandidates < 1 || a.PoolFactor < 1 || a.MaxSeeds < 0 || a.MaxSkips < 1 {
		bad("activelearning: run_size, daily_budget, max_candidates, pool_factor, max_skips must be ≥ 1 and max_seeds ≥ 0")
	}
	switch a.Uncertainty {
	case "entropy", "margin", "least_confidence":
	default:
		bad("activelearning.uncertainty %q is not entropy, margin or least_confidence", a.Uncertainty)
	}
	if a.DisagreementWeight < 0 || a.ForeignnessWeight < 0 {
		bad("activelearning: disagreement_weight and foreignness_weight must be ≥ 0")
	}
	for name, v := range map[string]float64{"confident_box_score": a.ConfidentBoxScore,
		"class_quota": a.ClassQuota, "source_quota": a.SourceQuota} {
		if v <= 0 || v > 1 {
			bad("activelearning.%s %v must be within (0,1]", name, v)
		}
	}
	if a.DuplicateDistance < 0 || a.DuplicateDistance > 4 {
		bad("activelearning.duplicate_distance %v must be within [0,4] (squared L2 of unit vectors)", a.DuplicateDistance)
	}
	if ls := a.LabelStudio; ls.URL != "" && ls.ProjectID < 1 {
		errs = append(errs, errors.New("activelearning.labelstudio: project_id is required with url"))
	}
	if ls := a.LabelStudio; ls.PollInterval < 0 || ls.LeaseFor <= 0 {
		errs = append(errs, errors.New("activelearning.labelstudio: poll_interval must be ≥ 0 and lease_for > 0"))
	}
	return errs
}
