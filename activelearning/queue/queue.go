package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// Errors the operations return; the HTTP API maps them to status codes.
var (
	ErrNotFound = errors.New("no such item in the queue")
	ErrNotHeld  = errors.New("the item is not leased to you under that lease")
	ErrDone     = errors.New("the item is already labelled or discarded")
	ErrInvalid  = errors.New("invalid request")
)

// Publisher sends submitted labels to the labels topic.
type Publisher interface {
	Publish(ctx context.Context, labels []event.Label) error
}

// Options configure a queue.
type Options struct {
	// Owner names this process in the log (e.g. host:pid:random).
	Owner        string
	LeaseTimeout time.Duration
	// MaxSkips distinct annotators skipping an item discard it.
	MaxSkips int
	// Poll is how often new picks are read from al_picks, expired leases
	// swept and unpublished labels retried (default 2 s).
	Poll time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Queue is the in-memory arbiter of the labelling queue, backed by the
// ClickHouse logs. All operations are safe for concurrent use; each holds the
// queue's lock while its events are written, so two callers can never be
// granted the same item.
type Queue struct {
	store   *Store
	pub     Publisher
	log     *slog.Logger
	opts    Options
	metrics *Metrics

	mu        sync.Mutex
	items     map[string]*entry
	seq       uint64
	pickSince time.Time
	wake      chan struct{}
}

// Open rebuilds the queue from ClickHouse: every pick, then every transition
// in order. Live leases stay with their holders until they expire.
func Open(ctx context.Context, store *Store, pub Publisher, log *slog.Logger, m *Metrics, opts Options) (*Queue, error) {
	opts.Poll = cmp.Or(opts.Poll, 2*time.Second)
	opts.MaxSkips = max(opts.MaxSkips, 1)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Owner == "" {
		opts.Owner = "queue-" + randomID()
	}
	q := &Queue{store: store, pub: pub, log: log, opts: opts, metrics: m,
		items: map[string]*entry{}, wake: make(chan struct{}, 1)}
	if m != nil {
		m.attach(q)
	}
	if err := q.loadPicks(ctx); err != nil {
		return nil, err
	}
	evs, err := store.Events(ctx)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if e, ok := q.items[ev.EventID]; ok {
			e.apply(ev)
		}
		q.seq = max(q.seq, ev.Seq)
	}
	log.Info("labelling queue rebuilt", "items", len(q.items), "events", len(evs), "counts", q.Counts())
	return q, nil
}

// loadPicks adds picks stored since the last load. The window overlaps by a
// minute so a pick whose insert committed late is not missed; known ids are
// skipped.
func (q *Queue) loadPicks(ctx context.Context) error {
	since := q.pickSince.Add(-time.Minute)
	if q.pickSince.IsZero() {
		since = time.Time{}
	}
	picks, err := q.store.Picks(ctx, since)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range picks {
		if _, ok := q.items[it.EventID]; !ok {
			q.items[it.EventID] = &entry{Item: it, state: Available}
		}
		if it.PickedAt.After(q.pickSince) {
			q.pickSince = it.PickedAt
		}
	}
	return nil
}

// Run sweeps expired leases, picks up new picks and publishes submitted
// labels until ctx ends.
func (q *Queue) Run(ctx context.Context) error {
	t := time.NewTicker(q.opts.Poll)
	defer t.Stop()
	q.Kick()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-q.wake:
		}
		q.Tick(ctx)
	}
}

// Kick asks Run for an early round (after a submit, so the label goes out
// now rather than at the next poll).
func (q *Queue) Kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Tick does one round of Run's work; errors are logged and retried next
// round.
func (q *Queue) Tick(ctx context.Context) {
	if err := q.loadPicks(ctx); err != nil {
		q.log.Warn("reading new picks failed; will retry", "err", err)
	}
	q.mu.Lock()
	err := q.expireLocked(ctx)
	q.mu.Unlock()
	if err != nil {
		q.log.Warn("expiring leases failed; will retry", "err", err)
	}
	if err := q.publishPending(ctx); err != nil {
		q.log.Warn("publishing labels failed; will retry", "err", err)
	}
}

// commitLocked stores evs and only then applies them.
func (q *Queue) commitLocked(ctx context.Context, evs []Event) error {
	now := q.opts.Now().UTC()
	for i := range evs {
		q.seq++
		evs[i].Seq, evs[i].Owner = q.seq, q.opts.Owner
		if evs[i].At.IsZero() {
			evs[i].At = now
		}
	}
	if err := q.store.Append(ctx, evs); err != nil {
		// The seq numbers stay used: a write that reached ClickHouse despite
		// the error must not be shadowed by a reused number.
		return err
	}
	for _, ev := range evs {
		q.items[ev.EventID].apply(ev)
		q.metrics.observe(ev, q.items[ev.EventID])
	}
	return nil
}

func (q *Queue) expireLocked(ctx context.Context) error {
	now := q.opts.Now()
	var evs []Event
	for id, e := range q.items {
		if e.state == Leased && !now.Before(e.leaseUntil) {
			evs = append(evs, Event{EventID: id, Kind: KindExpired, Annotator: e.annotator, LeaseID: e.leaseID})
		}
	}
	if len(evs) == 0 {
		return nil
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(a.EventID, b.EventID) })
	if err := q.commitLocked(ctx, evs); err != nil {
		return fmt.Errorf("expire %d leases: %w", len(evs), err)
	}
	q.log.Info("leases expired", "items", len(evs))
	return nil
}

// Next leases up to n items to annotator: first the ones it already holds
// (a reloaded page gets the same work back), then the best available items
// it has not skipped, highest score first.
func (q *Queue) Next(ctx context.Context, annotator string, n int) ([]Lease, error) {
	return q.lease(ctx, annotator, n, q.opts.LeaseTimeout)
}

func (q *Queue) lease(ctx context.Context, annotator string, n int, timeout time.Duration) ([]Lease, error) {
	if annotator == "" || n < 1 {
		return nil, fmt.Errorf("%w: annotator and n ≥ 1 are required", ErrInvalid)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.expireLocked(ctx); err != nil {
		return nil, err
	}
	var held, free []*entry
	for _, e := range q.items {
		switch {
		case e.state == Leased && e.annotator == annotator:
			held = append(held, e)
		case e.state == Available && !e.skippedBy[annotator]:
			free = append(free, e)
		}
	}
	sortByPriority(held)
	sortByPriority(free)
	var out []Lease
	for _, e := range held[:min(n, len(held))] {
		out = append(out, Lease{Item: e.Item, LeaseID: e.leaseID, LeaseUntil: e.leaseUntil})
	}
	want := n - len(out)
	if want <= 0 || len(free) == 0 {
		return out, nil
	}
	leaseID := randomID()
	until := q.opts.Now().Add(timeout).UTC().Truncate(time.Millisecond)
	var evs []Event
	for _, e := range free[:min(want, len(free))] {
		evs = append(evs, Event{EventID: e.EventID, Kind: KindLeased, Annotator: annotator, LeaseID: leaseID, LeaseUntil: until})
	}
	if err := q.commitLocked(ctx, evs); err != nil {
		return nil, fmt.Errorf("lease %d items to %s: %w", len(evs), annotator, err)
	}
	for _, ev := range evs {
		out = append(out, Lease{Item: q.items[ev.EventID].Item, LeaseID: leaseID, LeaseUntil: until})
	}
	return out, nil
}

func sortByPriority(es []*entry) {
	slices.SortFunc(es, func(a, b *entry) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := a.PickedAt.Compare(b.PickedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.EventID, b.EventID)
	})
}

// held returns the entry if annotator holds it under leaseID. A lease that
// expired counts as held while nobody else has taken the item, so a slow
// annotator's work is not thrown away for nothing.
func (q *Queue) held(id, annotator, leaseID string) (*entry, error) {
	e, ok := q.items[id]
	switch {
	case !ok:
		return nil, ErrNotFound
	case e.state == Submitted || e.state == Discarded:
		return nil, ErrDone
	case e.annotator != annotator || e.leaseID != leaseID || leaseID == "":
		return nil, ErrNotHeld
	case e.state == Leased:
		return e, nil
	case e.state == Available && !e.skippedBy[annotator]:
		return e, nil
	}
	return nil, ErrNotHeld
}

// Renew extends annotator's lease on item id by the lease timeout.
func (q *Queue) Renew(ctx context.Context, annotator, id, leaseID string) (time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.held(id, annotator, leaseID)
	if err != nil {
		return time.Time{}, err
	}
	until := q.opts.Now().Add(q.opts.LeaseTimeout).UTC().Truncate(time.Millisecond)
	kind := KindRenewed
	if e.state == Available {
		kind = KindLeased // the lease had lapsed: take it again
	}
	ev := Event{EventID: id, Kind: kind, Annotator: annotator, LeaseID: leaseID, LeaseUntil: until}
	if err := q.commitLocked(ctx, []Event{ev}); err != nil {
		return time.Time{}, fmt.Errorf("renew lease on %s: %w", id, err)
	}
	return until, nil
}

// Release gives item id back to the queue unlabelled.
func (q *Queue) Release(ctx context.Context, annotator, id, leaseID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.held(id, annotator, leaseID)
	if err != nil {
		return err
	}
	if e.state != Leased {
		return nil
	}
	return q.commitLocked(ctx, []Event{{EventID: id, Kind: KindReleased, Annotator: annotator, LeaseID: leaseID}})
}

// Skip returns item id to the queue and keeps it from annotator; after
// MaxSkips annotators skipped it, it is discarded.
func (q *Queue) Skip(ctx context.Context, annotator, id, leaseID, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.held(id, annotator, leaseID)
	if err != nil {
		return err
	}
	evs := []Event{{EventID: id, Kind: KindSkipped, Annotator: annotator, LeaseID: leaseID, Reason: reason}}
	if skips := len(e.skippedBy) + 1; skips >= q.opts.MaxSkips {
		evs = append(evs, Event{EventID: id, Kind: KindDiscarded, Reason: fmt.Sprintf("skipped by %d annotators", skips)})
	}
	if err := q.commitLocked(ctx, evs); err != nil {
		return fmt.Errorf("skip %s: %w", id, err)
	}
	return nil
}

// Submit records annotator's label for item id under its lease. It returns
// once the submission is durable; the label is published to Kafka right
// after (and retried until it is).
func (q *Queue) Submit(ctx context.Context, annotator, id, leaseID, label string, boxes []event.Box) error {
	if label == "" && len(boxes) == 0 {
		return fmt.Errorf("%w: a label or boxes are required", ErrInvalid)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.held(id, annotator, leaseID); err != nil {
		return err
	}
	return q.submitLocked(ctx, annotator, id, leaseID, label, boxes)
}

// SubmitExternal records a label that arrived from a labelling tool (Label
// Studio) rather than through a lease. It is accepted unless the item is
// already done; a local annotator's lease on it ends, since the work is
// done. A repeat for a done item returns ErrDone, so webhook retries are
// harmless.
func (q *Queue) SubmitExternal(ctx context.Context, annotator, id, label string, boxes []event.Box) error {
	if label == "" && len(boxes) == 0 {
		return fmt.Errorf("%w: a label or boxes are required", ErrInvalid)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.items[id]
	switch {
	case !ok:
		return ErrNotFound
	case e.state == Submitted || e.state == Discarded:
		return ErrDone
	}
	return q.submitLocked(ctx, annotator, id, "", label, boxes)
}

func (q *Queue) submitLocked(ctx context.Context, annotator, id, leaseID, label string, boxes []event.Box) error {
	ev := Event{EventID: id, Kind: KindSubmitted, Annotator: annotator, LeaseID: leaseID, Label: label, Boxes: boxes}
	if err := q.commitLocked(ctx, []Event{ev}); err != nil {
		return fmt.Errorf("submit %s: %w", id, err)
	}
	q.Kick()
	return nil
}

// LeaseTo leases up to n items to annotator for d instead of the usual
// timeout, for tools that hold work longer than a person (Label Studio).
func (q *Queue) LeaseTo(ctx context.Context, annotator string, n int, d time.Duration) ([]Lease, error) {
	return q.lease(ctx, annotator, n, d)
}

// publishPending publishes submitted labels not yet marked published, then
// marks them. Publishing happens outside the lock so a slow broker does not
// stall annotators.
func (q *Queue) publishPending(ctx context.Context) error {
	q.mu.Lock()
	var labels []event.Label
	for _, e := range q.items {
		if e.state == Submitted && !e.published && e.label != nil {
			labels = append(labels, *e.label)
		}
	}
	q.mu.Unlock()
	if len(labels) == 0 || q.pub == nil {
		return nil
	}
	slices.SortFunc(labels, func(a, b event.Label) int { return cmp.Compare(a.EventID, b.EventID) })
	if err := q.pub.Publish(ctx, labels); err != nil {
		return fmt.Errorf("publish %d labels: %w", len(labels), err)
	}
	evs := make([]Event, len(labels))
	for i, l := range labels {
		evs[i] = Event{EventID: l.EventID, Kind: KindPublished, Annotator: l.Annotator}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.commitLocked(ctx, evs); err != nil {
		// Published but not marked: they go out again next round and the
		// labels table collapses the duplicates.
		return fmt.Errorf("mark %d labels published: %w", len(evs), err)
	}
	return nil
}

// Counts returns how many items are in each state.
func (q *Queue) Counts() map[State]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.countsLocked()
}

func (q *Queue) countsLocked() map[State]int {
	out := map[State]int{}
	for _, s := range States {
		out[s] = 0
	}
	for _, e := range q.items {
		out[e.state]++
	}
	return out
}

// Snapshot describes one item's queue state.
type Snapshot struct {
	EventID    string    `json:"event_id"`
	State      State     `json:"state"`
	Annotator  string    `json:"annotator,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	Published  bool      `json:"published"`
}

// Get returns item id's state.
func (q *Queue) Get(id string) (Snapshot, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.items[id]
	if !ok {
		return Snapshot{}, false
	}
	s := Snapshot{EventID: id, State: e.state, Annotator: e.annotator, Published: e.published}
	if e.state == Leased {
		s.LeaseUntil = e.leaseUntil
	}
	return s, true
}

// Owner is the name this queue writes into the log.
func (q *Queue) Owner() string { return q.opts.Owner }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
