// Package queue is the labelling queue: the items selection picked, leased to
// annotators, acknowledged by submitted labels, returned when a lease expires
// or is released, and published as labels to Kafka.
//
// Durability: ClickHouse holds two append-only logs, al_picks (what was
// enqueued) and al_queue_events (every transition). The queue owner writes a
// transition to ClickHouse before it applies it in memory and answers, and a
// new process rebuilds its state by replaying both logs, so a restart loses no
// item, keeps live leases with their holders and never hands out or accepts a
// label for an item twice. Labels are published after their "submitted" event
// is stored and marked "published" afterwards (an outbox): a crash in between
// republishes, and the labels table collapses the duplicate.
//
// Single owner: exactly one process may own the queue, because its in-memory
// state is the arbiter of who holds what. lookout al serve records a
// heartbeat in al_owners and refuses to start while another owner's heartbeat
// is fresh; deploy it as one replica (a Kubernetes Deployment with
// replicas: 1 and strategy Recreate, or a systemd unit on one host).
package queue

import (
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

// State is where an item stands.
type State string

// Item states.
const (
	Available State = "available"
	Leased    State = "leased"
	Submitted State = "submitted"
	Discarded State = "discarded"
)

// States lists every state, for metrics.
var States = []State{Available, Leased, Submitted, Discarded}

// Item is one picked image: what selection stored in al_picks.
type Item struct {
	EventID        string      `json:"event_id"`
	SelectionID    string      `json:"selection_id"`
	PickedAt       time.Time   `json:"picked_at"`
	Rank           uint32      `json:"rank"`
	Model          string      `json:"model"`
	ModelVersion   string      `json:"model_version"`
	Source         string      `json:"source"`
	Task           string      `json:"task"`
	Arm            string      `json:"arm,omitempty"`
	ImageURI       string      `json:"image_uri"`
	PredictedClass string      `json:"predicted_class"`
	ProbClasses    []string    `json:"prob_classes,omitempty"`
	ProbValues     []float32   `json:"prob_values,omitempty"`
	BoxClasses     []string    `json:"box_classes,omitempty"`
	BoxScores      []float32   `json:"box_scores,omitempty"`
	BoxXYXY        [][]float32 `json:"box_xyxy,omitempty"`
	Embedder       string      `json:"embedder,omitempty"`
	// Score is the selection priority; Reasons say why it was picked and
	// ScoreNames/ScoreValues hold every score behind it.
	Score       float64   `json:"score"`
	Reasons     []string  `json:"reasons"`
	ScoreNames  []string  `json:"score_names"`
	ScoreValues []float32 `json:"score_values"`
}

// Confidence is the model's top probability (or best box score).
func (it *Item) Confidence() float64 {
	best := 0.0
	for _, v := range it.ProbValues {
		best = max(best, float64(v))
	}
	for _, v := range it.BoxScores {
		best = max(best, float64(v))
	}
	return best
}

// Boxes returns the item's predicted boxes.
func (it *Item) Boxes() []event.Box {
	out := make([]event.Box, 0, len(it.BoxScores))
	for i := range it.BoxScores {
		b := event.Box{Score: float64(it.BoxScores[i])}
		if i < len(it.BoxClasses) {
			b.Class = it.BoxClasses[i]
		}
		if i < len(it.BoxXYXY) && len(it.BoxXYXY[i]) == 4 {
			for k := range 4 {
				b.XYXY[k] = float64(it.BoxXYXY[i][k])
			}
		}
		out = append(out, b)
	}
	return out
}

// Kinds of queue events.
const (
	KindLeased    = "leased"
	KindRenewed   = "renewed"
	KindReleased  = "released"
	KindExpired   = "expired"
	KindSkipped   = "skipped"
	KindDiscarded = "discarded"
	KindSubmitted = "submitted"
	KindPublished = "published"
)

// Event is one row of al_queue_events.
type Event struct {
	Seq        uint64
	At         time.Time
	EventID    string
	Kind       string
	Annotator  string
	LeaseID    string
	LeaseUntil time.Time
	Label      string
	Boxes      []event.Box
	Reason     string
	Owner      string
}

// entry is an item with its queue state.
type entry struct {
	Item
	state      State
	annotator  string // lease holder, or the last one after it ended
	leaseID    string // current or last lease
	leaseUntil time.Time
	skippedBy  map[string]bool
	label      *event.Label // once submitted
	published  bool
}

// apply moves e by ev. Replay and live operations share it, so the state a
// restart rebuilds is the state the old process had.
func (e *entry) apply(ev Event) {
	switch ev.Kind {
	case KindLeased:
		e.state, e.annotator, e.leaseID, e.leaseUntil = Leased, ev.Annotator, ev.LeaseID, ev.LeaseUntil
	case KindRenewed:
		e.leaseUntil = ev.LeaseUntil
	case KindReleased, KindExpired:
		e.state = Available
	case KindSkipped:
		if e.skippedBy == nil {
			e.skippedBy = map[string]bool{}
		}
		e.skippedBy[ev.Annotator] = true
		e.state = Available
	case KindDiscarded:
		e.state = Discarded
		e.trim()
	case KindSubmitted:
		e.state, e.annotator = Submitted, ev.Annotator
		e.label = &event.Label{EventID: e.EventID, Label: ev.Label, Boxes: ev.Boxes, Annotator: ev.Annotator, TS: ev.At}
	case KindPublished:
		e.published = true
		e.trim()
	}
}

// trim drops what a finished item no longer needs, so the queue's memory
// grows by a small record per finished item rather than by its whole pick.
func (e *entry) trim() {
	e.ProbClasses, e.ProbValues, e.BoxClasses, e.BoxScores, e.BoxXYXY = nil, nil, nil, nil, nil
	e.Reasons, e.ScoreNames, e.ScoreValues, e.skippedBy = nil, nil, nil, nil
	if e.label != nil && e.published {
		e.label = nil
	}
}

// Lease is an item handed to an annotator.
type Lease struct {
	Item
	LeaseID    string    `json:"lease_id"`
	LeaseUntil time.Time `json:"lease_until"`
}
