package simulate

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// t0 is a fixed start time so generated traffic is reproducible.
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// sharedDir holds one picture pool for the whole package's tests. Rendering
// is cheap normally but slow under the race detector, and NewGenerator
// reuses existing pictures, so tests that do not test the pool itself share
// it. Tests of rendering and reuse use their own t.TempDir().
var sharedDir string

// sharedImagesPerClass is the shared pool's size per source × class ×
// condition.
const sharedImagesPerClass = 2

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "simulate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newTestGenerator builds a generator over the shared pool; change adjusts
// the config before the defaults are applied.
func newTestGenerator(t *testing.T, change func(*Config)) *Generator {
	t.Helper()
	cfg := DefaultConfig(sharedDir)
	cfg.ImagesPerClass = sharedImagesPerClass
	cfg.Seed = 42
	if change != nil {
		change(&cfg)
	}
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatalf("NewGenerator: %v", err)
	}
	return g
}

// at is the timestamp of the k-th event at rate events per second.
func at(k int, rate float64) time.Time {
	return t0.Add(time.Duration(float64(k) / rate * float64(time.Second)))
}
