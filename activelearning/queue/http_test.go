package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/testenv"
)

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) call(method, path string, body any, out any) int {
	c.t.Helper()
	var rd bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&rd).Encode(body)
	}
	req, _ := http.NewRequest(method, c.base+path, &rd)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestHTTPRoundTripPublishesLabels drives the annotator API over HTTP with
// real tokens, and reads the published labels back from the broker with
// kcat, an independent Kafka client.
func TestHTTPRoundTripPublishesLabels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, _ := testenv.ClickHouse(t)
	broker := testenv.Kafka(t, "labels")
	kc := config.Default().Kafka
	kc.Brokers = []string{broker}
	k, err := kafkaconn.New(kc)
	if err != nil {
		t.Fatal(err)
	}
	w := k.Writer("labels")
	defer w.Close()
	seedPicks(t, conn, 4, time.Now())
	q, err := Open(ctx, NewStore(conn), KafkaPublisher{W: w}, testenv.Logger(t), NewMetrics(nil),
		Options{LeaseTimeout: time.Minute, MaxSkips: 2, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	tokens := []auth.Token{
		{Name: "alice", SHA256: auth.Hash("tok-alice"), Roles: []auth.Role{auth.RoleAnnotator}},
		{Name: "bob", SHA256: auth.Hash("tok-bob"), Roles: []auth.Role{auth.RoleAnnotator}},
		{Name: "grafana", SHA256: auth.Hash("tok-view"), Roles: []auth.Role{auth.RoleViewer}},
	}
	mux := http.NewServeMux()
	q.Routes(mux, auth.New(tokens, testenv.Logger(t), nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	alice := client{t, srv.URL, "tok-alice"}
	bob := client{t, srv.URL, "tok-bob"}

	if code := (client{t, srv.URL, ""}).call("POST", "/api/al/next?n=2", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code := (client{t, srv.URL, "tok-view"}).call("POST", "/api/al/next?n=2", nil, nil); code != http.StatusForbidden {
		t.Fatalf("viewer fetching: %d, want 403", code)
	}
	var got struct{ Items []Lease }
	if code := alice.call("POST", "/api/al/next?n=2", nil, &got); code != 200 || len(got.Items) != 2 {
		t.Fatalf("alice next: %d %+v", code, got)
	}
	first := got.Items[0]
	if first.ImageURI == "" || len(first.Reasons) == 0 || first.LeaseID == "" {
		t.Fatalf("lease lacks image, reasons or lease id: %+v", first)
	}
	// Bob cannot act on Alice's item.
	if code := bob.call("POST", "/api/al/items/"+first.EventID+"/submit",
		Request{LeaseID: first.LeaseID, Label: "ok"}, nil); code != http.StatusConflict {
		t.Fatalf("bob submitting alice's item: %d, want 409", code)
	}
	if code := alice.call("POST", "/api/al/items/"+first.EventID+"/renew", Request{LeaseID: first.LeaseID}, nil); code != 200 {
		t.Fatalf("renew: %d", code)
	}
	if code := alice.call("POST", "/api/al/items/"+first.EventID+"/submit",
		Request{LeaseID: first.LeaseID, Label: "scratch"}, nil); code != 200 {
		t.Fatalf("submit: %d", code)
	}
	if code := alice.call("POST", "/api/al/items/"+first.EventID+"/submit",
		Request{LeaseID: first.LeaseID, Label: "scratch"}, nil); code != http.StatusConflict {
		t.Fatalf("second submit: %d, want 409", code)
	}
	second := got.Items[1]
	if code := alice.call("POST", "/api/al/items/"+second.EventID+"/skip", Request{LeaseID: second.LeaseID}, nil); code != 400 {
		t.Fatalf("skip without reason: %d, want 400", code)
	}
	if code := alice.call("POST", "/api/al/items/"+second.EventID+"/skip",
		Request{LeaseID: second.LeaseID, Reason: "image is black"}, nil); code != 200 {
		t.Fatalf("skip: %d", code)
	}
	if code := alice.call("POST", "/api/al/items/nope/release", Request{LeaseID: "x"}, nil); code != 404 {
		t.Fatalf("unknown item: %d, want 404", code)
	}
	var stats struct{ Counts map[State]int }
	(client{t, srv.URL, "tok-view"}).call("GET", "/api/al/stats", nil, &stats)
	if stats.Counts[Submitted] != 1 || stats.Counts[Available] != 3 {
		t.Fatalf("stats %+v", stats.Counts)
	}

	var line string
	testenv.Eventually(t, 20*time.Second, "the label on the labels topic", func() bool {
		out, _ := exec.Command("kcat", "-C", "-b", broker, "-t", "labels", "-e", "-q", "-f", "%k\t%s\n").CombinedOutput()
		line = strings.TrimSpace(string(out))
		return line != ""
	})
	key, value, _ := strings.Cut(line, "\t")
	l, err := event.DecodeLabel([]byte(value))
	if err != nil {
		t.Fatalf("published label does not validate: %v (%s)", err, value)
	}
	if key != first.EventID || l.EventID != first.EventID || l.Label != "scratch" || l.Annotator != "alice" {
		t.Fatalf("published %s %+v", key, l)
	}
	testenv.Eventually(t, 10*time.Second, "the published mark", func() bool {
		s, _ := q.Get(first.EventID)
		return s.Published
	})
}
