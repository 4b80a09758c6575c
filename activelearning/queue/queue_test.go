package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is a Publisher double that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	labels []event.Label
	fail   bool
}

func (r *recorder) Publish(_ context.Context, ls []event.Label) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return fmt.Errorf("broker down")
	}
	r.labels = append(r.labels, ls...)
	return nil
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.labels {
		if l.EventID == id {
			n++
		}
	}
	return n
}

func seedPicks(t *testing.T, conn driver.Conn, n int, at time.Time) []string {
	t.Helper()
	var items []Item
	var ids []string
	for i := range n {
		id := fmt.Sprintf("ev-%03d", i)
		ids = append(ids, id)
		items = append(items, Item{EventID: id, SelectionID: "sel-1", PickedAt: at, Rank: uint32(i), Model: "m",
			ModelVersion: "v1", Source: "cam-1", Task: event.TaskClassification, ImageURI: "file:///img/" + id + ".png",
			PredictedClass: "dent", ProbClasses: []string{"dent", "ok"}, ProbValues: []float32{0.55, 0.45},
			Score: 1 - float64(i)/float64(n), Reasons: []string{"uncertain"}, ScoreNames: []string{"entropy"},
			ScoreValues: []float32{0.99}})
	}
	if err := InsertPicks(context.Background(), conn, items); err != nil {
		t.Fatal(err)
	}
	return ids
}

func openQueue(t *testing.T, conn driver.Conn, clk *clock, pub Publisher, owner string) *Queue {
	t.Helper()
	q, err := Open(context.Background(), NewStore(conn), pub, testenv.Logger(t), nil,
		Options{Owner: owner, LeaseTimeout: 10 * time.Minute, MaxSkips: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestLeaseExpiryReturnsItems(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	seedPicks(t, conn, 3, clk.Now())
	q := openQueue(t, conn, clk, &recorder{}, "a")

	got, err := q.Next(ctx, "alice", 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("alice got %d items, err %v; want 3", len(got), err)
	}
	if got[0].EventID != "ev-000" {
		t.Errorf("first item %s, want the highest score ev-000", got[0].EventID)
	}
	if more, _ := q.Next(ctx, "bob", 3); len(more) != 0 {
		t.Fatalf("bob got %d leased items", len(more))
	}
	// Alice renews one lease; the others run out.
	clk.Add(6 * time.Minute)
	if _, err := q.Renew(ctx, "alice", "ev-002", got[2].LeaseID); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Minute)
	q.Tick(ctx)
	c := q.Counts()
	if c[Available] != 2 || c[Leased] != 1 {
		t.Fatalf("after expiry: %v, want 2 available and 1 leased", c)
	}
	bob, err := q.Next(ctx, "bob", 3)
	if err != nil || len(bob) != 2 {
		t.Fatalf("bob got %d after expiry (err %v), want 2", len(bob), err)
	}
	// Alice's late submit on an item Bob now holds is refused.
	if err := q.Submit(ctx, "alice", "ev-000", got[0].LeaseID, "dent", nil); err != ErrNotHeld {
		t.Fatalf("late submit: %v, want ErrNotHeld", err)
	}
	if err := q.Submit(ctx, "bob", "ev-000", bob[0].LeaseID, "dent", nil); err != nil {
		t.Fatal(err)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM al_queue_events WHERE kind = 'expired'"); n != 2 {
		t.Fatalf("%d expired events stored, want 2", n)
	}
}

func TestRestartLosesNothingAndNeverDoubleAssigns(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	seedPicks(t, conn, 10, clk.Now())
	pub := &recorder{fail: true} // the broker is down before the "crash"
	q1 := openQueue(t, conn, clk, pub, "first")

	alice, _ := q1.Next(ctx, "alice", 4)
	bob, _ := q1.Next(ctx, "bob", 2)
	if len(alice) != 4 || len(bob) != 2 {
		t.Fatalf("leases %d/%d, want 4/2", len(alice), len(bob))
	}
	for _, l := range alice[:2] {
		if err := q1.Submit(ctx, "alice", l.EventID, l.LeaseID, "dent", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := q1.Skip(ctx, "bob", bob[0].EventID, bob[0].LeaseID, "blurry"); err != nil {
		t.Fatal(err)
	}
	q1.Tick(ctx) // publishing fails: the labels stay pending
	before := q1.Counts()

	// "Restart": a new process rebuilds from ClickHouse only.
	pub2 := &recorder{}
	q2 := openQueue(t, conn, clk, pub2, "second")
	if after := q2.Counts(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("state after restart %v, before %v", after, before)
	}
	// Items held before the restart stay with their holders.
	again, _ := q2.Next(ctx, "alice", 2)
	if len(again) != 2 || again[0].EventID != alice[2].EventID || again[1].LeaseID != alice[3].LeaseID {
		t.Fatalf("alice after restart got %+v, want her 2 open leases back", again)
	}
	// A newcomer gets only what nobody holds, never a submitted item.
	seen := map[string]bool{}
	carol, _ := q2.Next(ctx, "carol", 10)
	for _, l := range carol {
		seen[l.EventID] = true
		if l.EventID == alice[0].EventID || l.EventID == alice[2].EventID || l.EventID == bob[1].EventID {
			t.Errorf("carol was given %s, which is submitted or held", l.EventID)
		}
	}
	// 10 items: 2 submitted, 2 held by alice, 1 held by bob, 1 skipped by
	// bob (available to carol): carol gets 5.
	if len(carol) != 5 || !seen[bob[0].EventID] {
		t.Fatalf("carol got %d items (skipped one included: %v), want 5", len(carol), seen[bob[0].EventID])
	}
	// The labels that were never published go out after the restart.
	q2.Tick(ctx)
	for _, l := range alice[:2] {
		if pub2.count(l.EventID) != 1 {
			t.Errorf("label %s published %d times after restart, want 1", l.EventID, pub2.count(l.EventID))
		}
		if s, _ := q2.Get(l.EventID); !s.Published || s.State != Submitted {
			t.Errorf("%s: %+v", l.EventID, s)
		}
	}
	// A submitted item cannot be labelled again.
	if err := q2.Submit(ctx, "alice", alice[0].EventID, alice[0].LeaseID, "ok", nil); err != ErrDone {
		t.Fatalf("second submit: %v, want ErrDone", err)
	}
	// A third process sees the same, including the publication marks.
	q3 := openQueue(t, conn, clk, &recorder{}, "third")
	if fmt.Sprint(q3.Counts()) != fmt.Sprint(q2.Counts()) {
		t.Fatalf("third rebuild %v, second %v", q3.Counts(), q2.Counts())
	}
	if s, _ := q3.Get(alice[0].EventID); !s.Published {
		t.Fatal("published mark lost in rebuild")
	}
}

func TestConcurrentAnnotatorsNeverShareAnItem(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	clk := &clock{now: time.Now()}
	ids := seedPicks(t, conn, 60, clk.Now())
	q := openQueue(t, conn, clk, &recorder{}, "a")

	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for a := range 6 {
		who := fmt.Sprint("annotator-", a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := q.Next(ctx, who, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				for _, l := range got {
					mu.Lock()
					if prev, dup := owner[l.EventID]; dup {
						errs <- fmt.Errorf("%s given to %s and %s", l.EventID, prev, who)
					}
					owner[l.EventID] = who
					mu.Unlock()
					if err := q.Submit(ctx, who, l.EventID, l.LeaseID, "dent", nil); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(owner) != len(ids) {
		t.Fatalf("%d of %d items labelled", len(owner), len(ids))
	}
	if n := testenv.Count(t, conn, "SELECT uniqExact(event_id) FROM al_queue_events WHERE kind = 'leased'"); n != uint64(len(ids)) {
		t.Fatalf("%d items leased, want %d", n, len(ids))
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM al_queue_events WHERE kind IN ('leased','submitted')"); n != 2*uint64(len(ids)) {
		t.Fatalf("%d lease+submit events, want exactly one of each per item (%d)", n, 2*len(ids))
	}
}

func TestSkipsDiscardAndNewPicksArrive(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	clk := &clock{now: time.Now()}
	seedPicks(t, conn, 1, clk.Now())
	q := openQueue(t, conn, clk, &recorder{}, "a")
	for _, who := range []string{"alice", "bob"} {
		got, _ := q.Next(ctx, who, 1)
		if len(got) != 1 {
			t.Fatalf("%s got nothing", who)
		}
		if err := q.Skip(ctx, who, got[0].EventID, got[0].LeaseID, "cannot tell"); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := q.Get("ev-000"); s.State != Discarded {
		t.Fatalf("after 2 skips: %s, want discarded", s.State)
	}
	// A pick stored later (e.g. by `lookout al select`) joins at the next tick.
	late := Item{EventID: "late-1", PickedAt: clk.Now().Add(time.Second), Model: "m", Score: 0.5}
	if err := InsertPicks(ctx, conn, []Item{late}); err != nil {
		t.Fatal(err)
	}
	q.Tick(ctx)
	if got, _ := q.Next(ctx, "alice", 5); len(got) != 1 || got[0].EventID != "late-1" {
		t.Fatalf("after tick alice got %+v, want late-1", got)
	}
}

func TestOwnerHeartbeats(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	s := NewStore(conn)
	now := time.Now()
	if err := s.Heartbeat(ctx, "a", "host-a", now); err != nil {
		t.Fatal(err)
	}
	if other, _, ok, err := s.OtherOwner(ctx, "b", now.Add(-30*time.Second)); err != nil || !ok || other != "a" {
		t.Fatalf("b sees owner %q ok=%v err=%v, want a alive", other, ok, err)
	}
	if _, _, ok, _ := s.OtherOwner(ctx, "b", now.Add(time.Minute)); ok {
		t.Fatal("a stale heartbeat still counts as alive")
	}
	if err := s.Resign(ctx, "a", now.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := s.OtherOwner(ctx, "b", now.Add(-30*time.Second)); ok {
		t.Fatal("a resigned owner still blocks a successor")
	}
}

func TestReleaseReturnsItemAndRenewRetakesLapsedLease(t *testing.T) {
	ctx := context.Background()
	conn, _ := testenv.ClickHouse(t)
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	seedPicks(t, conn, 2, clk.Now())
	q := openQueue(t, conn, clk, &recorder{}, "a")
	a, _ := q.Next(ctx, "alice", 2)
	if err := q.Release(ctx, "bob", a[0].EventID, a[0].LeaseID); err != ErrNotHeld {
		t.Fatalf("bob releasing alice's item: %v, want ErrNotHeld", err)
	}
	if err := q.Release(ctx, "alice", a[0].EventID, a[0].LeaseID); err != nil {
		t.Fatal(err)
	}
	b, _ := q.Next(ctx, "bob", 2)
	if len(b) != 1 || b[0].EventID != a[0].EventID {
		t.Fatalf("bob got %+v, want the released %s", b, a[0].EventID)
	}
	// Alice's other lease lapses; nobody took the item, so renewing takes it
	// back and her submit still counts.
	clk.Add(11 * time.Minute)
	q.Tick(ctx)
	until, err := q.Renew(ctx, "alice", a[1].EventID, a[1].LeaseID)
	if err != nil || !until.After(clk.Now()) {
		t.Fatalf("renew after lapse: %v, %v", until, err)
	}
	if s, _ := q.Get(a[1].EventID); s.State != Leased || s.Annotator != "alice" {
		t.Fatalf("after renew: %+v", s)
	}
	if err := q.Submit(ctx, "alice", a[1].EventID, a[1].LeaseID, "dent", nil); err != nil {
		t.Fatal(err)
	}
}
