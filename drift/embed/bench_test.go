package embed

import (
	"context"
	"testing"

	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestBenchRuns exercises the benchmark end to end on the tiny model (no
// timing is asserted, only that every phase ran and was accounted for).
func TestBenchRuns(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	dir := t.TempDir()
	stage := NewStage(openTiny(t), FileFetcher{Root: dir}, conn, StageOptions{Workers: 2, Inferers: 2}, nil)
	res, err := Bench(context.Background(), stage, BenchConfig{Images: 6, Distinct: 3, Width: 64, Height: 48, Dir: dir, Rounds: 2}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if !(res.Raw > 0 && res.Pipeline > 0 && res.RawCPU > 0 && res.PipelineCPU > 0 && res.PeakRSS > 0) {
		t.Fatalf("result %+v has empty measurements", res)
	}
	if s := res.Steps; s.Fetch.Images != 12 || s.Preprocess.Images != 12 || s.Infer.Images != 12 || s.Insert.Images != 12 {
		t.Fatalf("steps %+v, want 12 images through each (2 pipeline rounds of 6)", s)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM embeddings"); n != 12 {
		t.Fatalf("%d embeddings stored, want 12", n)
	}
}
