package labelstudio

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/internal/event"
)

// SecretHeader is the custom header the Label Studio webhook must carry
// (configure it in the webhook's headers); its value is the shared secret.
const SecretHeader = "X-Lookout-Webhook-Secret"

// Annotator is the queue annotator that holds items pushed to Label Studio.
const Annotator = "labelstudio"

// Bridge moves work between the queue and one Label Studio project.
type Bridge struct {
	Queue   *queue.Queue
	Client  *Client
	Project int
	Tasks   TaskOptions
	// Secret authenticates webhook calls; an empty secret refuses them all.
	Secret string
	// LeaseFor is how long pushed items stay leased to Label Studio
	// (default 7 days); unlabelled ones return to the queue afterwards.
	LeaseFor time.Duration
	Log      *slog.Logger
}

// Push leases up to n items to Label Studio and imports them as tasks. If
// the import fails the leases are released, so nothing is stranded.
func (b *Bridge) Push(ctx context.Context, n int) (int, error) {
	leaseFor := b.LeaseFor
	if leaseFor <= 0 {
		leaseFor = 7 * 24 * time.Hour
	}
	leases, err := b.Queue.LeaseTo(ctx, Annotator, n, leaseFor)
	if err != nil || len(leases) == 0 {
		return 0, err
	}
	items := make([]queue.Item, len(leases))
	for i, l := range leases {
		items[i] = l.Item
	}
	if _, err := b.Client.Import(ctx, b.Project, Tasks(items, b.Tasks)); err != nil {
		for _, l := range leases {
			if rerr := b.Queue.Release(ctx, Annotator, l.EventID, l.LeaseID); rerr != nil {
				b.Log.Warn("release after failed import", "event_id", l.EventID, "err", rerr)
			}
		}
		return 0, fmt.Errorf("import %d tasks into project %d: %w", len(items), b.Project, err)
	}
	b.Log.Info("pushed tasks to label studio", "project", b.Project, "tasks", len(items))
	return len(items), nil
}

// Poll reads the project's annotated tasks through the export API and
// submits every annotation the queue does not have yet. It returns how many
// were new.
func (b *Bridge) Poll(ctx context.Context) (int, error) {
	tasks, err := b.Client.Export(ctx, b.Project)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		for _, a := range t.Annotations {
			ok, err := b.apply(ctx, t.Data, a)
			if err != nil {
				return n, err
			}
			if ok {
				n++
				break // one label per item: the first usable annotation
			}
		}
	}
	return n, nil
}

// webhookPayload is the part of a Label Studio webhook body lookout reads.
type webhookPayload struct {
	Action     string       `json:"action"`
	Task       ExportedTask `json:"task"`
	Annotation *Annotation  `json:"annotation"`
}

// Webhook receives Label Studio's ANNOTATION_CREATED and ANNOTATION_UPDATED
// events. Calls without the shared secret get 401; other actions are
// acknowledged and ignored.
func (b *Bridge) Webhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(SecretHeader)
		if b.Secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(b.Secret)) != 1 {
			b.Log.Warn("label studio webhook refused: bad secret", "remote", r.RemoteAddr)
			http.Error(w, "bad webhook secret", http.StatusUnauthorized)
			return
		}
		var p webhookPayload
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&p); err != nil {
			http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
			return
		}
		if (p.Action != "ANNOTATION_CREATED" && p.Action != "ANNOTATION_UPDATED") || p.Annotation == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if _, err := b.apply(r.Context(), p.Task.Data, *p.Annotation); err != nil {
			b.Log.Error("label studio annotation not stored", "err", err)
			// 5xx makes Label Studio's delivery count as failed; polling
			// catches it up in any case.
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// apply submits one annotation; false means it was not usable or the item
// was already done.
func (b *Bridge) apply(ctx context.Context, data map[string]any, a Annotation) (bool, error) {
	id, _ := data["event_id"].(string)
	if id == "" || a.WasCancelled {
		return false, nil
	}
	label, boxes := Parse(a.Result, b.Tasks.FromName)
	if label == "" && len(boxes) == 0 {
		return false, nil
	}
	err := b.Queue.SubmitExternal(ctx, Annotator+":"+completedBy(a.CompletedBy), id, label, boxes)
	switch {
	case errors.Is(err, queue.ErrDone), errors.Is(err, queue.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("submit label studio annotation of %s: %w", id, err)
	}
	return true, nil
}

// Parse reads a choice (from the control named fromName, or any choices
// control when fromName is empty) and rectangles (as normalised xyxy boxes)
// from an annotation result.
func Parse(results []Result, fromName string) (string, []event.Box) {
	var label string
	var boxes []event.Box
	for _, r := range results {
		switch r.Type {
		case "choices":
			if label == "" && len(r.Value.Choices) > 0 && (fromName == "" || r.FromName == fromName) {
				label = r.Value.Choices[0]
			}
		case "rectanglelabels":
			v := r.Value
			if len(v.RectangleLabels) == 0 || v.X == nil || v.Y == nil || v.Width == nil || v.Height == nil {
				continue
			}
			boxes = append(boxes, event.Box{Class: v.RectangleLabels[0], Score: 1,
				XYXY: [4]float64{*v.X / 100, *v.Y / 100, (*v.X + *v.Width) / 100, (*v.Y + *v.Height) / 100}})
		}
	}
	return label, boxes
}

// completedBy names a Label Studio user: exports give a user id, webhooks
// may give a user object.
func completedBy(raw json.RawMessage) string {
	var id int
	if json.Unmarshal(raw, &id) == nil && id != 0 {
		return "user-" + strconv.Itoa(id)
	}
	var u struct {
		ID    int    `json:"id"`
		Email string `json:"email"`
	}
	if json.Unmarshal(raw, &u) == nil {
		if u.Email != "" {
			return u.Email
		}
		if u.ID != 0 {
			return "user-" + strconv.Itoa(u.ID)
		}
	}
	return "unknown"
}
