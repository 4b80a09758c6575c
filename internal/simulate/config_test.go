package simulate

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestDefaultsFillZeroValues(t *testing.T) {
	var c Config
	c.Defaults()
	want := Config{
		Sources: []string{"cam-1", "cam-2", "cam-3"}, Model: "defect-classifier", ModelVersion: "v1",
		Rate: 60, ShiftSource: "cam-2", ImagesPerClass: 6,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Defaults() = %+v, want %+v", c, want)
	}
}

func TestDefaultsKeepSetValues(t *testing.T) {
	c := Config{Sources: []string{"a"}, Model: "m", ModelVersion: "v9", Rate: 5, ShiftSource: "a",
		ImagesPerClass: 2, LabelFraction: 0.5, ShiftAfter: -1, Seed: 7, Duration: time.Second, Count: 3}
	want := c
	c.Defaults()
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Defaults() changed set values: %+v, want %+v", c, want)
	}
}

func TestDefaultConfigHasEveryDefault(t *testing.T) {
	c := DefaultConfig("/tmp/x")
	if c.ShiftAfter != 2*time.Minute || c.LabelFraction != 0.1 || c.ImageDir != "/tmp/x" || c.Rate != 60 {
		t.Errorf("DefaultConfig = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig does not validate: %v", err)
	}
}

func TestDefaultShiftSource(t *testing.T) {
	for _, tc := range []struct {
		sources []string
		want    string
	}{
		{[]string{"line-a", "cam-2", "line-c"}, "cam-2"},
		{[]string{"line-a", "line-b", "line-c"}, "line-b"},
		{[]string{"solo"}, "solo"},
	} {
		c := Config{Sources: tc.sources}
		c.Defaults()
		if c.ShiftSource != tc.want {
			t.Errorf("sources %v: shift source %q, want %q", tc.sources, c.ShiftSource, tc.want)
		}
	}
}

func TestValidateRejectsBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no image dir", func(c *Config) { c.ImageDir = " " }, "image_dir is required"},
		{"no sources", func(c *Config) { c.Sources = nil }, "at least one camera"},
		{"duplicate source", func(c *Config) { c.Sources = []string{"cam-1", "cam-2", "cam-1"} }, "listed twice"},
		{"source with slash", func(c *Config) { c.Sources = []string{"cam-1", "cam-2", "a/b"} }, "directory name"},
		{"dot source", func(c *Config) { c.Sources = []string{"cam-1", "cam-2", ".."} }, "directory name"},
		{"control char", func(c *Config) { c.Model = "a\nb" }, "model"},
		{"empty version", func(c *Config) { c.ModelVersion = "" }, "model_version is required"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "rate must be"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate must be"},
		{"unknown shift source", func(c *Config) { c.ShiftSource = "cam-9" }, "shift_source"},
		{"no images", func(c *Config) { c.ImagesPerClass = 0 }, "images_per_class"},
		{"too many images", func(c *Config) { c.ImagesPerClass = 100000 }, "images_per_class"},
		{"label fraction", func(c *Config) { c.LabelFraction = 1.5 }, "label_fraction"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "duration"},
		{"negative count", func(c *Config) { c.Count = -1 }, "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("/tmp/x")
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Config{}
	err := c.Validate()
	if err == nil {
		t.Fatal("empty config validated")
	}
	for _, want := range []string{"image_dir", "sources", "model", "rate", "images_per_class"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNewGeneratorRejectsInvalidConfig(t *testing.T) {
	if _, err := NewGenerator(Config{}); err == nil {
		t.Error("NewGenerator accepted a config without image_dir")
	}
}

// The service embeds Config in its YAML config, whose keys are snake_case.
func TestConfigYAMLTagsAreSnakeCase(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if got, want := f.Tag.Get("yaml"), snake(f.Name); got != want {
			t.Errorf("field %s: yaml tag %q, want %q", f.Name, got, want)
		}
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
