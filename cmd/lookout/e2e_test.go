package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/drift"
	"github.com/lookout-dev/lookout/drift/embed"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/simulate"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestEndToEnd runs the whole loop on real components: simulated camera
// traffic is produced with kcat (an independent Kafka client) into a Kafka
// wire-protocol broker, the service ingests it into ClickHouse and embeds the
// sampled images with ONNX Runtime, and the drift job, evaluated at the end
// of the simulated timeline, flags the shifted source and only that one.
func TestEndToEnd(t *testing.T) {
	cfg := e2eConfig(t)
	gen, err := simulate.NewGenerator(cfg.Simulate)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed past timeline makes the run reproducible: event ids, the
	// sample and the permutation seeds all derive from it.
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	const seconds, perSecond = 150, 40
	preds, labels, sampled := simulateTimeline(t, gen, t0, seconds, perSecond)
	testenv.KcatProduce(t, cfg.Kafka.Brokers[0], "predictions", append(preds, "bad-1\t{\"event_id\":"))
	testenv.KcatProduce(t, cfg.Kafka.Brokers[0], "labels", labels)

	ctx, cancel := context.WithCancel(context.Background())
	svc, err := newService(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service shutdown: %v", err)
		}
	}()

	testenv.Eventually(t, 2*time.Minute, "every prediction and sampled embedding stored", func() bool {
		return testenv.Count(t, svc.conn, "SELECT uniqExact(event_id) FROM predictions") == uint64(len(preds)) &&
			testenv.Count(t, svc.conn, "SELECT uniqExact(event_id) FROM embeddings") == uint64(sampled)
	})
	checkEndpoints(t, cfg.HTTP.Listen)

	job := drift.NewJob(svc.conn, cfg.Drift, nil, testenv.Logger(t))
	reports, err := job.RunOnce(ctx, t0.Add(seconds*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkVerdict(t, reports, gen.Config().ShiftSource)
	if n := testenv.Count(t, svc.conn, "SELECT count() FROM drift_reports WHERE flagged = 1 AND source = ?", gen.Config().ShiftSource); n == 0 {
		t.Error("no flagged report row stored for the shifted source")
	}
}

func e2eConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{testenv.Kafka(t, "predictions", "predictions-dlq", "labels")}
	_, cfg.ClickHouse = testenv.ClickHouse(t)
	cfg.HTTP.Listen = freeAddr(t)
	cfg.Embed.ModelPath = testenv.ModelPath(t)
	cfg.Embed.ORTLibrary = testenv.ORTLibrary(t)
	cfg.Embed.ImageRoot = t.TempDir()
	cfg.Embed.FlushInterval = 200 * time.Millisecond
	cfg.Ingest.FlushInterval = 200 * time.Millisecond
	cfg.Ingest.Limits.MaxAge = 0 // the simulated timeline is fixed in the past
	cfg.Drift.Enabled = false    // evaluated explicitly at the end of the timeline
	cfg.Simulate = simulate.DefaultConfig(cfg.Embed.ImageRoot)
	cfg.Simulate.ShiftAfter = 60 * time.Second
	cfg.Simulate.ImagesPerClass = 4
	cfg.Simulate.Seed = 7
	return cfg
}

// simulateTimeline produces seconds×perSecond events stamped along a
// simulated clock, as kcat key<TAB>value lines, and counts how many of
// them the embedding stage will sample.
func simulateTimeline(t *testing.T, gen *simulate.Generator, t0 time.Time, seconds, perSecond int) (preds, labels []string, sampled int) {
	rate := config.Default().Embed.SampleRate
	for i := range seconds * perSecond {
		now := t0.Add(time.Duration(i) * time.Second / time.Duration(perSecond))
		p, l := gen.Next(now)
		preds = append(preds, p.EventID+"\t"+mustEncode(t, p.Encode))
		if l != nil {
			labels = append(labels, l.EventID+"\t"+mustEncode(t, l.Encode))
		}
		if embed.Sampled(p.EventID, rate) {
			sampled++
		}
	}
	return preds, labels, sampled
}

func mustEncode(t *testing.T, enc func() ([]byte, error)) string {
	b, err := enc()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkVerdict(t *testing.T, reports []drift.Report, shifted string) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range reports {
		t.Logf("%s %-14s %-17s p=%.3g effect=%.4f n=%d/%d %s", r.Source, r.Test, r.Status, r.PValue, r.Effect, r.NRef, r.NCur, r.Detail)
		seen[r.Source]++
		if r.Status == drift.StatusInsufficient {
			t.Errorf("%s %s: insufficient data (%s)", r.Source, r.Test, r.Detail)
		}
		if r.Source == shifted && !r.Flagged() {
			t.Errorf("shifted source %s: %s did not flag drift", r.Source, r.Test)
		}
		if r.Source != shifted && r.Flagged() {
			t.Errorf("unshifted source %s: %s flagged drift", r.Source, r.Test)
		}
	}
	if len(seen) != 3 {
		t.Errorf("reports cover sources %v, want 3 sources", seen)
	}
}

func checkEndpoints(t *testing.T, addr string) {
	t.Helper()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `lookout_consumer_messages_total{outcome="dead_lettered",stage="predictions"} 1`,
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
