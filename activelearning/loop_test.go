package activelearning

import (
	"context"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/activelearning/score"
	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/stream"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// TestLoopLabelsBecomeAccuracy closes the loop on real components: select
// from ClickHouse, lease and submit through the queue, publish to the
// (kfake) labels topic, store with the service's own labels stage, and read
// the accuracy of the labelled predictions back from the label_accuracy view.
func TestLoopLabelsBecomeAccuracy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, _ := testenv.ClickHouse(t)
	now := time.Now().UTC()
	buildWorld(t, conn, now)
	sel := NewSelector(conn, testOptions(), testenv.Logger(t), nil)
	sel.Foreignness = score.DriftSignals{}
	res, err := sel.Run(ctx, false)
	if err != nil || len(res.Picks) == 0 {
		t.Fatalf("selection: %d picks, %v", len(res.Picks), err)
	}

	kc := config.Default().Kafka
	kc.Brokers = []string{testenv.Kafka(t, kc.LabelsTopic)}
	k, err := kafkaconn.New(kc)
	if err != nil {
		t.Fatal(err)
	}
	w := k.Writer(kc.LabelsTopic)
	defer w.Close()
	q, err := queue.Open(ctx, queue.NewStore(conn), queue.KafkaPublisher{W: w}, testenv.Logger(t), nil,
		queue.Options{LeaseTimeout: time.Minute, MaxSkips: 2, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.Reader(kc.LabelsTopic, "al-loop-test")
	if err != nil {
		t.Fatal(err)
	}
	qDone, sDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(qDone); _ = q.Run(ctx) }()
	go func() {
		defer close(sDone)
		_ = stream.Run(ctx, r, ingest.Labels(conn, &event.Decoder{}, ingest.NewMetrics(nil)),
			stream.Options{BatchSize: 100, FlushInterval: 100 * time.Millisecond, Log: testenv.Logger(t)})
	}()
	// Registered after the database, so it runs first: both goroutines are
	// stopped before the database is dropped.
	t.Cleanup(func() {
		cancel()
		<-qDone
		<-sDone
		_ = r.Close()
	})

	leases, err := q.Next(ctx, "alice", 4)
	if err != nil || len(leases) != 4 {
		t.Fatalf("next: %d, %v", len(leases), err)
	}
	// Alice agrees with the model on three images and corrects one.
	for i, l := range leases {
		label := l.PredictedClass
		if i == 3 {
			label = "other"
		}
		if err := q.Submit(ctx, "alice", l.EventID, l.LeaseID, label, nil); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "alice's labels in ClickHouse", func() bool {
		return testenv.Count(t, conn, "SELECT uniqExact(event_id) FROM labels WHERE annotator = 'alice'") == 4
	})
	correct := testenv.Count(t, conn, `SELECT toUInt64(sum(pred = label)) FROM
		(SELECT event_id, any(predicted_class) AS pred FROM predictions GROUP BY event_id)
		ANY INNER JOIN (SELECT event_id, any(label) AS label FROM labels WHERE annotator = 'alice' GROUP BY event_id)
		USING event_id`)
	if correct != 3 {
		t.Fatalf("%d of alice's 4 labels agree with the model, want 3", correct)
	}
	if n := testenv.Count(t, conn, "SELECT toUInt64(sum(labelled)) FROM label_accuracy WHERE model = 'm'"); n < 4 {
		t.Fatalf("label_accuracy counts %d labelled predictions of model m, want ≥ 4", n)
	}
}
