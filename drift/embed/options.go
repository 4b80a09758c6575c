package embed

import (
	"github.com/lookout-dev/lookout/internal/config"
)

// Options translates the embed section of the configuration into the
// stage's options, so the service and the embed command agree.
func Options(e config.Embed) StageOptions {
	pre := DefaultPreprocess()
	if e.ResizeShortest > 0 && e.Crop > 0 {
		pre.ResizeShortest, pre.Crop = e.ResizeShortest, e.Crop
	}
	return StageOptions{
		Sampling: SamplingConfig{
			Rate: e.SampleRate, Window: e.SampleWindow, Floor: e.SampleFloor,
			UncertainBelow: e.UncertainBelow, UncertaintyBoost: e.UncertaintyBoost,
			MaxPerSecond: e.MaxPerSecond, Burst: e.Burst,
		},
		Workers: e.Workers, Inferers: e.Inferers, InferBatch: e.InferBatch,
		Preprocess: pre,
		Limits:     Limits{MaxBytes: e.MaxImageBytes},
	}
}

// ModelOptions is the model part of the embed configuration.
func ModelOptions(e config.Embed) ModelConfig {
	return ModelConfig{Path: e.ModelPath, ORTLibrary: e.ORTLibrary, IntraOpThreads: e.IntraOpThreads, InputSize: e.Crop}
}

// NewFetchers returns the image fetchers the configuration allows: file://
// below ImageRoot, and http(s):// to HTTPAllowHosts when any are listed.
func NewFetchers(e config.Embed) Fetchers {
	f := Fetchers{File: &FileFetcher{Root: e.ImageRoot, MaxBytes: e.MaxImageBytes}}
	if len(e.HTTPAllowHosts) > 0 {
		f.HTTP = NewHTTPFetcher(HTTPConfig{AllowHosts: e.HTTPAllowHosts, AllowPrivate: e.HTTPAllowPrivate,
			Timeout: e.FetchTimeout, MaxBytes: e.MaxImageBytes})
	}
	return f
}
