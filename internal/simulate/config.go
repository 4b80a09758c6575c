package simulate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Defaults applied by Config.Defaults and DefaultConfig. They describe the
// demo: three cameras at 60 events/s in total, cam-2 shifting after two
// minutes so the shift is visible soon after start-up.
const (
	DefaultModel          = "defect-classifier"
	DefaultModelVersion   = "v1"
	DefaultRate           = 60
	DefaultShiftSource    = "cam-2"
	DefaultShiftAfter     = 2 * time.Minute
	DefaultImagesPerClass = 6
	DefaultLabelFraction  = 0.1
)

// Limits that keep a mistyped config from filling the disk or the topic.
const (
	maxRate           = 1e6
	maxImagesPerClass = 1000
	maxNameLen        = 128
)

// DefaultSources are the cameras simulated when Config.Sources is empty.
func DefaultSources() []string { return []string{"cam-1", "cam-2", "cam-3"} }

// Config describes the simulated fleet. Its yaml tags let the service embed
// it in its own YAML config.
//
// The zero values of ShiftAfter (shifted from the start) and LabelFraction
// (no labels) are meaningful, so Defaults cannot tell "unset" from "0" and
// leaves them alone. Start from DefaultConfig and decode YAML or flags over
// it to get their defaults (2 minutes, 0.1) when a setting is absent.
type Config struct {
	// ImageDir is where the picture pool is written; required.
	ImageDir string `yaml:"image_dir"`
	// Sources are the camera names; each is also a directory name below
	// ImageDir, so it may not contain path separators.
	Sources []string `yaml:"sources"`
	// Model and ModelVersion name the simulated classifier in every event.
	Model        string `yaml:"model"`
	ModelVersion string `yaml:"model_version"`
	// Rate is the number of prediction events per second over all sources.
	Rate float64 `yaml:"rate"`
	// ShiftSource is the camera whose domain shifts. Empty means cam-2 when
	// the sources are the defaults, else the second source (or the only one).
	ShiftSource string `yaml:"shift_source"`
	// ShiftAfter is how long after the first event the shift begins: 0 means
	// shifted from the start, a negative value means never.
	ShiftAfter time.Duration `yaml:"shift_after"`
	// ImagesPerClass is the pool size per source × class × condition.
	ImagesPerClass int `yaml:"images_per_class"`
	// LabelFraction is the share of predictions that also get a ground-truth
	// label event, as an annotator would sample them; 0 means no labels.
	LabelFraction float64 `yaml:"label_fraction"`
	// Seed makes the traffic reproducible; 0 is a valid seed like any other.
	Seed int64 `yaml:"seed"`
	// Duration stops Run after this long; 0 runs until cancelled.
	Duration time.Duration `yaml:"duration"`
	// Count stops Run after this many predictions; 0 means unlimited.
	Count int `yaml:"count"`
}

// DefaultConfig returns the demo configuration writing images below
// imageDir, including the ShiftAfter and LabelFraction defaults that
// Defaults cannot supply.
func DefaultConfig(imageDir string) Config {
	c := Config{ImageDir: imageDir, ShiftAfter: DefaultShiftAfter, LabelFraction: DefaultLabelFraction}
	c.Defaults()
	return c
}

// Defaults fills the zero-valued settings with the demo defaults. It leaves
// ShiftAfter, LabelFraction, Seed, Duration and Count alone because their
// zero values mean something (see Config).
func (c *Config) Defaults() {
	if len(c.Sources) == 0 {
		c.Sources = DefaultSources()
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.ModelVersion == "" {
		c.ModelVersion = DefaultModelVersion
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ShiftSource == "" {
		c.ShiftSource = defaultShiftSource(c.Sources)
	}
	if c.ImagesPerClass == 0 {
		c.ImagesPerClass = DefaultImagesPerClass
	}
}

// defaultShiftSource prefers cam-2 and otherwise the second camera, so a
// custom fleet still has one shifting camera and at least one stable one to
// compare it with.
func defaultShiftSource(sources []string) string {
	if slices.Contains(sources, DefaultShiftSource) {
		return DefaultShiftSource
	}
	if len(sources) > 1 {
		return sources[1]
	}
	if len(sources) == 1 {
		return sources[0]
	}
	return ""
}

// Validate reports every problem with c at once, so a user fixes the config
// in one pass. Call Defaults first: Validate does not fill anything in.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("simulate: "+format, args...))
	}
	if strings.TrimSpace(c.ImageDir) == "" {
		add("image_dir is required (the image pool is written below it)")
	}
	errs = append(errs, validateSources(c.Sources)...)
	for _, f := range []struct{ name, v string }{{"model", c.Model}, {"model_version", c.ModelVersion}} {
		if err := checkName(f.name, f.v); err != nil {
			errs = append(errs, err)
		}
	}
	if !(c.Rate > 0 && c.Rate <= maxRate) {
		add("rate must be in (0, %g] events per second, got %v", float64(maxRate), c.Rate)
	}
	if !slices.Contains(c.Sources, c.ShiftSource) {
		add("shift_source %q is not one of sources %v (use a negative shift_after to disable the shift)", c.ShiftSource, c.Sources)
	}
	if c.ImagesPerClass < 1 || c.ImagesPerClass > maxImagesPerClass {
		add("images_per_class must be in 1..%d, got %d", maxImagesPerClass, c.ImagesPerClass)
	}
	if !(c.LabelFraction >= 0 && c.LabelFraction <= 1) {
		add("label_fraction must be in [0, 1], got %v", c.LabelFraction)
	}
	if c.Duration < 0 {
		add("duration must not be negative (0 runs until cancelled), got %v", c.Duration)
	}
	if c.Count < 0 {
		add("count must not be negative (0 means unlimited), got %d", c.Count)
	}
	return errors.Join(errs...)
}

// validateSources checks that every source is unique and usable both as an
// event's source field and as a directory name.
func validateSources(sources []string) []error {
	if len(sources) == 0 {
		return []error{errors.New("simulate: sources must list at least one camera")}
	}
	var errs []error
	seen := make(map[string]bool, len(sources))
	for _, s := range sources {
		if err := checkName("source", s); err != nil {
			errs = append(errs, err)
			continue
		}
		if s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
			errs = append(errs, fmt.Errorf("simulate: source %q is used as a directory name and may not be '.', '..' or contain a slash", s))
		}
		if seen[s] {
			errs = append(errs, fmt.Errorf("simulate: source %q is listed twice", s))
		}
		seen[s] = true
	}
	return errs
}

// checkName mirrors the event contract's rules for names, so every event the
// simulator emits is guaranteed to validate downstream.
func checkName(field, v string) error {
	if v == "" {
		return fmt.Errorf("simulate: %s is required", field)
	}
	if len(v) > maxNameLen || strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("simulate: %s %q must be 1..%d printable bytes", field, v, maxNameLen)
	}
	return nil
}
