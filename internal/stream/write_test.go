package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// memStore is a store whose writes are visible only once committed, like
// an INSERT; failCommits makes the next commits fail.
type memStore struct {
	mu          sync.Mutex
	stored      []string
	writes      []int // batches per committed write
	failCommits int
	reader      *memReader
	// early lists offsets the consumer committed before the write holding
	// them: it never may.
	early []string
}

type memWrite struct {
	s       *memStore
	batches [][]string
}

func (s *memStore) begin(context.Context) (Write[string], error) { return &memWrite{s: s}, nil }

func (w *memWrite) Add(_ context.Context, items []string) error {
	w.batches = append(w.batches, append([]string(nil), items...))
	return nil
}

func (w *memWrite) Commit(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.failCommits > 0 {
		w.s.failCommits--
		return errors.New("server said no")
	}
	for _, b := range w.batches {
		w.s.stored = append(w.s.stored, b...)
	}
	w.s.writes = append(w.s.writes, len(w.batches))
	w.s.reader.mu.Lock()
	committed, ok := w.s.reader.committed[0]
	w.s.reader.mu.Unlock()
	var first int64
	fmt.Sscanf(w.batches[0][0], "m%d", &first)
	if ok && committed >= first {
		w.s.early = append(w.s.early, fmt.Sprintf("offset %d committed before the write from %d", committed, first))
	}
	return nil
}

func (w *memWrite) Abort() {}

// A backlog is stored in writes of BatchesPerWrite full batches; a failed
// commit is redone with every batch of its write; dead letters are written
// once; offsets move only after the write holding them is committed.
func TestBacklogJoinsWritesAndRetriesWholeWrites(t *testing.T) {
	const n = 95 // 9 full batches of 10 and one of 5, every 7th message malformed
	r := &memReader{committed: map[int]int64{}}
	for i := range n {
		v := fmt.Sprint("m", i)
		if i%7 == 3 {
			v = "bad"
		}
		r.msgs = append(r.msgs, kafka.Message{Partition: 0, Offset: int64(i), Value: []byte(v)})
	}
	store := &memStore{reader: r, failCommits: 2}
	stage := Stage[string]{
		Name: "test",
		Decode: func(m kafka.Message) (string, bool, error) {
			if string(m.Value) == "bad" {
				return "", false, errors.New("malformed")
			}
			return string(m.Value), true, nil
		},
		Begin: store.begin,
	}
	dlq := &memWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, r, stage, Options{BatchSize: 10, BatchesPerWrite: 3, FlushInterval: 500 * time.Millisecond,
			DeadLetter: dlq, RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	}()
	if c := r.waitCommitted(0, n-1); c != n-1 {
		t.Fatalf("committed up to %d of %d", c, n-1)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range r.msgs {
		if string(m.Value) != "bad" {
			want = append(want, string(m.Value))
		}
	}
	if !slices.Equal(store.stored, want) {
		t.Fatalf("stored %v, want each good message once, in order: %v", store.stored, want)
	}
	if bad := n - len(want); len(dlq.msgs) != bad {
		t.Fatalf("%d dead letters, want %d (written once despite the retried writes)", len(dlq.msgs), bad)
	}
	if store.writes[0] != 3 {
		t.Fatalf("batches per write %v: the backlog's first write should hold 3", store.writes)
	}
	if len(store.early) > 0 {
		t.Fatal(store.early)
	}
}

// blockingWrite stalls its second Add until the context it was given ends,
// as an INSERT to a hung server would.
type blockingWrite struct {
	memWrite
	adds *atomic.Int32
}

func (w *blockingWrite) Add(ctx context.Context, items []string) error {
	if w.adds.Add(1) == 2 {
		<-ctx.Done()
		return ctx.Err()
	}
	return w.memWrite.Add(ctx, items)
}

// At shutdown the open write is abandoned and everything it held is
// written again under the drain deadline, then committed.
func TestShutdownDrainsTheOpenWrite(t *testing.T) {
	r := &memReader{committed: map[int]int64{}}
	for i := range 20 {
		r.msgs = append(r.msgs, kafka.Message{Partition: 0, Offset: int64(i), Value: []byte(fmt.Sprint("m", i))})
	}
	store := &memStore{reader: r}
	var adds atomic.Int32
	stage := Stage[string]{
		Name:   "test",
		Decode: func(m kafka.Message) (string, bool, error) { return string(m.Value), true, nil },
		Begin: func(context.Context) (Write[string], error) {
			return &blockingWrite{memWrite: memWrite{s: store}, adds: &adds}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, r, stage, Options{BatchSize: 10, BatchesPerWrite: 3, FlushInterval: time.Minute, DrainTimeout: 5 * time.Second})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for adds.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second batch never reached the write")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(store.stored) != 20 || r.committed[0] != 19 {
		t.Fatalf("stored %d of 20, committed up to %d: the open write was not drained", len(store.stored), r.committed[0])
	}
}
