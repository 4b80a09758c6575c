package router

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// Every routed prediction reaches Kafka as a valid event with its arm,
// rollout id and the serving backend's version; kcat reads them back.
func TestEventsReachKafka(t *testing.T) {
	addr := testenv.Kafka(t, "predictions")
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "predictions", Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"outcome"})
	pub := NewKafkaPublisher(w, 100, events, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	go pub.Run(ctx)

	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "dent")
	r, srv := newTestRouter(t, testConfig(stable, canary), pub)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 50, RolloutID: "ro-1"})
	want := map[string]string{}
	for i := range 20 {
		key := fmt.Sprint("cam-", i)
		req, _ := http.NewRequest("POST", srv.URL+"/v1/models/m:predict",
			strings.NewReader(fmt.Sprintf(`{"instances":[{"image_uri":"file:///img/%d.png"}]}`, i)))
		req.Header.Set("X-Camera-Id", key)
		req.Header.Set("X-Request-Id", fmt.Sprint("req-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want[fmt.Sprint("req-", i)] = resp.Header.Get("X-Lookout-Arm")
	}
	// A request without an image URI cannot make a valid event: counted, not sent.
	http.Post(srv.URL+"/p", "application/json", strings.NewReader(`{"instances":[{}]}`))
	cancel()
	<-pub.Done()
	if got := events.WithLabelValues("published"); got == nil {
		t.Fatal("no counter")
	}

	out, err := exec.Command("kcat", "-C", "-b", addr, "-t", "predictions", "-e", "-q", "-f", "%s\n").Output()
	if err != nil {
		t.Fatalf("kcat (run `make setup`): %v", err)
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if len(lines) != 20 {
		t.Fatalf("kcat read %d events, want 20:\n%s", len(lines), out)
	}
	for _, l := range lines {
		p, err := event.DecodePrediction(l)
		if err != nil {
			t.Fatalf("event does not decode: %v\n%s", err, l)
		}
		arm := want[p.EventID]
		wantVersion, wantClass := "v1", "good"
		if arm == "canary" {
			wantVersion, wantClass = "v2", "dent"
		}
		if p.Arm != arm || p.RolloutID != "ro-1" || p.ModelVersion != wantVersion || p.PredictedClass != wantClass ||
			!strings.HasPrefix(p.Source, "cam-") || !strings.HasPrefix(p.ImageURI, "file:///img/") || p.LatencyMS == nil {
			t.Errorf("event %s (arm %s): %+v", p.EventID, arm, p)
		}
	}
	if got := testutilValue(r.m.events, "invalid"); got != 1 {
		t.Errorf("invalid events = %v, want 1", got)
	}
}
