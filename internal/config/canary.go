package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"
)

// Canary configures the canary router (lookout router) and the rollout
// controller that runs inside it.
type Canary struct {
	// Listen is the address of the inference proxy clients call.
	Listen string `yaml:"listen"`
	// AdminListen serves the admin API, the web page, /metrics and /healthz.
	AdminListen string `yaml:"admin_listen"`
	// Model is the model name written into every routed prediction event.
	Model string `yaml:"model"`
	// Task is classification or detection.
	Task string `yaml:"task"`
	// Backends are the model servers; a rollout moves traffic between them.
	Backends []CanaryBackend `yaml:"backends"`
	// Stable names the backend serving all traffic before any rollout. After
	// the first start the audit log decides, so a restart never switches.
	Stable string `yaml:"stable"`
	// KeyHeader holds the sticky routing key (e.g. the camera id); requests
	// without it are keyed by client address.
	KeyHeader string `yaml:"key_header"`
	// SourceHeader gives the event's source; KeyHeader is used when it is
	// absent, then "unknown".
	SourceHeader string `yaml:"source_header"`
	// ImageURIHeader and ImageURIField locate the image URI: a request header,
	// else a field of each KServe v1 instance / a BYTES input of a v2 request
	// / a top-level field of the request body.
	ImageURIHeader string `yaml:"image_uri_header"`
	ImageURIField  string `yaml:"image_uri_field"`
	// EventIDHeader carries the caller's request id, used to derive event ids.
	EventIDHeader string `yaml:"event_id_header"`
	// Classes names the columns of probability arrays in model responses.
	Classes []string `yaml:"classes"`
	// OutputName selects the Open Inference Protocol v2 output holding the
	// probabilities; empty takes the first numeric output.
	OutputName string `yaml:"output_name"`
	// Timeout bounds one backend call, from sending the request to the end
	// of the answer (enforced within 40 ms); MaxBodyBytes bounds requests
	// and responses.
	Timeout      time.Duration `yaml:"timeout"`
	MaxBodyBytes int64         `yaml:"max_body_bytes"`
	// RetryOnStable re-sends a request that failed on the canary to stable.
	RetryOnStable bool `yaml:"retry_on_stable"`
	// BreakerFailures consecutive failures open a backend's circuit for
	// BreakerOpenFor; then one trial request decides.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerOpenFor  time.Duration `yaml:"breaker_open_for"`
	// ShadowQueue bounds mirrored requests waiting for ShadowWorkers; when it
	// is full the mirror is dropped and counted, never waited for.
	ShadowQueue   int `yaml:"shadow_queue"`
	ShadowWorkers int `yaml:"shadow_workers"`
	// PublishQueue bounds prediction events waiting for Kafka; full → dropped and counted.
	PublishQueue int `yaml:"publish_queue"`
	// Follow makes this router a follower: it runs no rollout controller and
	// serves the route the controller instance last recorded in the audit
	// log, polled every FollowInterval; its admin API is read-only. Run one
	// controller (follow: false) and any number of followers to scale out.
	Follow         bool          `yaml:"follow"`
	FollowInterval time.Duration `yaml:"follow_interval"`
	// Rollout holds the default plan and the analysis thresholds.
	Rollout Rollout `yaml:"rollout"`
}

// CanaryBackend is one model server.
type CanaryBackend struct {
	// Name identifies the backend in the API, metrics and the audit log.
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Version is written as model_version into its prediction events.
	Version string `yaml:"version"`
}

// Rollout configures progressive rollouts and their analysis.
type Rollout struct {
	// Steps are canary weights in percent, the last normally 100.
	Steps []float64 `yaml:"steps"`
	// StepPause is the least time spent at each step; a step advances only
	// after at least one passing analysis.
	StepPause time.Duration `yaml:"step_pause"`
	// ShadowPercent mirrors that share of stable traffic to the canary.
	ShadowPercent float64 `yaml:"shadow_percent"`
	// Interval is the analysis period.
	Interval time.Duration `yaml:"interval"`
	// MinSamples per arm below which a metric is inconclusive.
	MinSamples int `yaml:"min_samples"`
	// FailureLimit consecutive failures of any one metric abort the rollout.
	FailureLimit int `yaml:"failure_limit"`
	// Thresholds: the canary fails a metric when it is worse than stable by
	// more than these.
	MaxErrorRateIncrease   float64       `yaml:"max_error_rate_increase"`
	MaxP99Increase         time.Duration `yaml:"max_p99_increase"`
	MaxConfidenceDrop      float64       `yaml:"max_confidence_drop"`
	MaxConfidenceKS        float64       `yaml:"max_confidence_ks"`
	MaxClassJS             float64       `yaml:"max_class_js"`
	MinShadowAgreement     float64       `yaml:"min_shadow_agreement"`
	MaxAccuracyDrop        float64       `yaml:"max_accuracy_drop"`
	MinLabelled            int           `yaml:"min_labelled"`
	RollbackApprovalTTL    time.Duration `yaml:"rollback_approval_ttl"`
	AlarmCheckInterval     time.Duration `yaml:"alarm_check_interval"`
	ProposeRollbackOnDrift bool          `yaml:"propose_rollback_on_drift"`
	// MaxEstimatedAccuracyDrop proposes a rollback when the promoted
	// version's label-free accuracy estimate (ATC, from the drift job) on a
	// source falls this far below the previous version's; 0 turns it off.
	MaxEstimatedAccuracyDrop float64 `yaml:"max_estimated_accuracy_drop"`
}

func defaultCanary() Canary {
	return Canary{
		Listen:          "127.0.0.1:8480",
		AdminListen:     "127.0.0.1:8481",
		Model:           "defect-classifier",
		Task:            "classification",
		Backends:        []CanaryBackend{{Name: "v1", URL: "http://127.0.0.1:8500", Version: "v1"}},
		Stable:          "v1",
		KeyHeader:       "X-Camera-Id",
		SourceHeader:    "X-Camera-Id",
		ImageURIHeader:  "X-Image-Uri",
		ImageURIField:   "image_uri",
		EventIDHeader:   "X-Request-Id",
		Timeout:         5 * time.Second,
		MaxBodyBytes:    8 << 20,
		RetryOnStable:   true,
		BreakerFailures: 5,
		BreakerOpenFor:  10 * time.Second,
		ShadowQueue:     256,
		ShadowWorkers:   4,
		PublishQueue:    10000,
		FollowInterval:  2 * time.Second,
		Rollout: Rollout{
			Steps:                  []float64{5, 25, 50, 100},
			StepPause:              time.Minute,
			Interval:               15 * time.Second,
			MinSamples:             50,
			FailureLimit:           2,
			MaxErrorRateIncrease:   0.02,
			MaxP99Increase:         100 * time.Millisecond,
			MaxConfidenceDrop:      0.05,
			MaxConfidenceKS:        0.2,
			MaxClassJS:             0.15,
			MinShadowAgreement:     0.9,
			MaxAccuracyDrop:        0.03,
			MinLabelled:            30,
			RollbackApprovalTTL:    24 * time.Hour,
			AlarmCheckInterval:     time.Minute,
			ProposeRollbackOnDrift: true,

			MaxEstimatedAccuracyDrop: 0.05,
		},
	}
}

// Backend returns the backend called name.
func (c *Canary) Backend(name string) (CanaryBackend, bool) {
	for _, b := range c.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return CanaryBackend{}, false
}

func (c *Canary) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, addr := range map[string]string{"canary.listen": c.Listen, "canary.admin_listen": c.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s: %q is not host:port", name, addr)
		}
	}
	if c.Model == "" {
		bad("canary.model must not be empty")
	}
	if c.Task != "classification" && c.Task != "detection" {
		bad("canary.task %q is neither classification nor detection", c.Task)
	}
	if len(c.Backends) == 0 {
		bad("canary.backends: at least one backend is required")
	}
	var names []string
	for i, b := range c.Backends {
		if b.Name == "" || slices.Contains(names, b.Name) {
			bad("canary.backends[%d]: name must be set and unique", i)
		}
		names = append(names, b.Name)
		if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("canary.backends[%d] (%s): url %q must be http(s)://host[:port][/path]", i, b.Name, b.URL)
		}
		if b.Version == "" {
			bad("canary.backends[%d] (%s): version must not be empty", i, b.Name)
		}
	}
	if _, ok := c.Backend(c.Stable); !ok {
		bad("canary.stable %q names no backend", c.Stable)
	}
	if c.Timeout <= 0 || c.MaxBodyBytes <= 0 {
		bad("canary: timeout and max_body_bytes must be > 0")
	}
	if c.BreakerFailures < 1 || c.BreakerOpenFor <= 0 {
		bad("canary: breaker_failures must be ≥ 1 and breaker_open_for > 0")
	}
	if c.FollowInterval <= 0 {
		bad("canary.follow_interval must be > 0")
	}
	if c.ShadowQueue < 1 || c.ShadowWorkers < 1 || c.PublishQueue < 1 {
		bad("canary: shadow_queue, shadow_workers and publish_queue must be ≥ 1")
	}
	errs = append(errs, c.Rollout.Validate()...)
	return errs
}

// Validate checks the plan and thresholds; it returns every problem found.
func (r *Rollout) Validate() []error {
	var errs []error
	if len(r.Steps) == 0 {
		errs = append(errs, errors.New("canary.rollout.steps: at least one step is required"))
	}
	prev := 0.0
	for _, s := range r.Steps {
		if s <= prev || s > 100 {
			errs = append(errs, fmt.Errorf("canary.rollout.steps %v must increase within (0,100]", r.Steps))
			break
		}
		prev = s
	}
	if r.ShadowPercent < 0 || r.ShadowPercent > 100 {
		errs = append(errs, fmt.Errorf("canary.rollout.shadow_percent %v must be within [0,100]", r.ShadowPercent))
	}
	if r.Interval <= 0 || r.StepPause < 0 || r.RollbackApprovalTTL <= 0 || r.AlarmCheckInterval <= 0 {
		errs = append(errs, errors.New("canary.rollout: interval, rollback_approval_ttl and alarm_check_interval must be > 0, step_pause ≥ 0"))
	}
	if r.MinSamples < 1 || r.FailureLimit < 1 || r.MinLabelled < 1 {
		errs = append(errs, errors.New("canary.rollout: min_samples, failure_limit and min_labelled must be ≥ 1"))
	}
	if r.MaxEstimatedAccuracyDrop < 0 || r.MaxEstimatedAccuracyDrop >= 1 {
		errs = append(errs, fmt.Errorf("canary.rollout.max_estimated_accuracy_drop %v must be within [0,1) (0 turns the alarm off)", r.MaxEstimatedAccuracyDrop))
	}
	return errs
}
