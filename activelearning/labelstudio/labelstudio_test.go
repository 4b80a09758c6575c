package labelstudio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// fakeLS is a Label Studio stand-in that checks requests the way its API
// reference documents them: token auth ("Authorization: Token <key>"), a JSON
// array of tasks whose data holds the labelling config's variables ($image),
// predictions with a result list of {from_name, to_name, type, value} and a
// numeric score; export via GET …/export?exportType=JSON.
type fakeLS struct {
	t       *testing.T
	token   string
	project int
	fail    bool

	mu    sync.Mutex
	tasks []ExportedTask
}

func (f *fakeLS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Token "+f.token {
		http.Error(w, `{"detail":"Authentication credentials were not provided."}`, http.StatusUnauthorized)
		return
	}
	base := fmt.Sprintf("/api/projects/%d/", f.project)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == base+"import":
		f.importTasks(w, r)
	case r.Method == http.MethodGet && r.URL.Path == base+"export":
		if r.URL.Query().Get("exportType") != "JSON" {
			http.Error(w, "exportType must be JSON", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		var done []ExportedTask
		for _, t := range f.tasks {
			if len(t.Annotations) > 0 { // download_all_tasks=false: annotated only
				done = append(done, t)
			}
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(done)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeLS) importTasks(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "only JSON may be posted directly", http.StatusUnsupportedMediaType)
		return
	}
	if f.fail {
		http.Error(w, `{"detail":"server error"}`, http.StatusInternalServerError)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		http.Error(w, "body must be a JSON list of tasks: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	preds := 0
	for i, t := range raw {
		var data map[string]any
		if err := json.Unmarshal(t["data"], &data); err != nil {
			http.Error(w, fmt.Sprintf("task %d: data must be an object", i), http.StatusBadRequest)
			return
		}
		if img, ok := data[ImageKey].(string); !ok || img == "" {
			http.Error(w, fmt.Sprintf("task %d: data lacks $image from the label config", i), http.StatusBadRequest)
			return
		}
		var ps []struct {
			Score  *float64 `json:"score"`
			Result []struct {
				FromName string         `json:"from_name"`
				ToName   string         `json:"to_name"`
				Type     string         `json:"type"`
				Value    map[string]any `json:"value"`
			} `json:"result"`
		}
		if p, ok := t["predictions"]; ok {
			if err := json.Unmarshal(p, &ps); err != nil {
				http.Error(w, fmt.Sprintf("task %d: predictions: %v", i, err), http.StatusBadRequest)
				return
			}
		}
		for _, p := range ps {
			if p.Score == nil || p.Result == nil {
				http.Error(w, fmt.Sprintf("task %d: prediction needs score and result", i), http.StatusBadRequest)
				return
			}
			for _, res := range p.Result {
				if res.FromName != "class" || res.ToName != "image" || res.Value[res.Type] == nil {
					http.Error(w, fmt.Sprintf("task %d: result %+v does not match the label config", i, res), http.StatusBadRequest)
					return
				}
			}
			preds++
		}
		f.tasks = append(f.tasks, ExportedTask{ID: len(f.tasks) + 1, Data: data})
	}
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"task_count": len(raw), "annotation_count": 0,
		"prediction_count": preds, "duration": 0.01, "file_upload_ids": []int{}})
}

// annotate records an annotator's choice on task i, as the UI would.
func (f *fakeLS) annotate(i int, choice string, user int) (ExportedTask, Annotation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := Annotation{ID: 100 + i, Result: []Result{{ID: "r1", FromName: "class", ToName: "image", Type: "choices",
		Value: Value{Choices: []string{choice}}}}, CompletedBy: json.RawMessage(fmt.Sprint(user))}
	f.tasks[i].Annotations = append(f.tasks[i].Annotations, a)
	return f.tasks[i], a
}

func seed(t *testing.T, n int) *queue.Queue {
	t.Helper()
	conn, _ := testenv.ClickHouse(t)
	var items []queue.Item
	for i := range n {
		items = append(items, queue.Item{EventID: fmt.Sprintf("ev-%d", i), PickedAt: time.Now(), Model: "m", ModelVersion: "v1",
			Source: "cam-1", Task: event.TaskClassification, ImageURI: fmt.Sprintf("file:///data/images/cam-1/%d.png", i),
			PredictedClass: "dent", ProbClasses: []string{"dent", "ok"}, ProbValues: []float32{0.6, 0.4},
			Score: float64(n - i), Reasons: []string{"uncertain:entropy=0.97"}})
	}
	if err := queue.InsertPicks(context.Background(), conn, items); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(context.Background(), queue.NewStore(conn), nil, testenv.Logger(t), nil,
		queue.Options{LeaseTimeout: time.Minute, MaxSkips: 2})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestLabelStudioRoundTrip(t *testing.T) {
	ctx := context.Background()
	q := seed(t, 4)
	ls := &fakeLS{t: t, token: "ls-token", project: 7}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	b := &Bridge{Queue: q, Client: &Client{BaseURL: srv.URL, Token: "ls-token"}, Project: 7, Secret: "hook-secret",
		Tasks: TaskOptions{FromName: "class", ToName: "image", ImageRoot: "/data/images", ImageURLPrefix: "https://img.example/"},
		Log:   testenv.Logger(t)}

	n, err := b.Push(ctx, 3)
	if err != nil || n != 3 {
		t.Fatalf("push: %d, %v", n, err)
	}
	if img := ls.tasks[0].Data[ImageKey]; img != "https://img.example/cam-1/0.png" {
		t.Fatalf("task image %v, want the rewritten URL", img)
	}
	for i := range 3 {
		if s, _ := q.Get(fmt.Sprintf("ev-%d", i)); s.State != queue.Leased || s.Annotator != Annotator {
			t.Fatalf("ev-%d after push: %+v, want leased to label studio", i, s)
		}
	}

	hook := httptest.NewServer(b.Webhook())
	defer hook.Close()
	post := func(secret string, payload any) int {
		body, _ := json.Marshal(payload)
		req, _ := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if secret != "" {
			req.Header.Set(SecretHeader, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	task, ann := ls.annotate(0, "scratch", 12)
	payload := map[string]any{"action": "ANNOTATION_CREATED", "task": task, "annotation": ann,
		"project": map[string]any{"id": 7}}
	if code := post("", payload); code != http.StatusUnauthorized {
		t.Fatalf("webhook without secret: %d, want 401", code)
	}
	if code := post("wrong", payload); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong secret: %d, want 401", code)
	}
	if s, _ := q.Get("ev-0"); s.State != queue.Leased {
		t.Fatalf("an unauthenticated webhook changed the queue: %+v", s)
	}
	if code := post("hook-secret", payload); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	if code := post("hook-secret", payload); code != http.StatusOK { // Label Studio retries
		t.Fatalf("repeated webhook: %d", code)
	}
	if s, _ := q.Get("ev-0"); s.State != queue.Submitted || s.Annotator != "labelstudio:user-12" {
		t.Fatalf("ev-0 after webhook: %+v", s)
	}

	// The second annotation arrives by polling the export API instead.
	ls.annotate(1, "ok", 13)
	got, err := b.Poll(ctx)
	if err != nil || got != 1 {
		t.Fatalf("poll: %d new, err %v; want 1 (ev-0 is already in)", got, err)
	}
	if s, _ := q.Get("ev-1"); s.State != queue.Submitted {
		t.Fatalf("ev-1 after poll: %+v", s)
	}
	if s, _ := q.Get("ev-2"); s.State != queue.Leased {
		t.Fatalf("unannotated ev-2: %+v, want still leased to label studio", s)
	}
}

func TestFailedImportReleasesItems(t *testing.T) {
	q := seed(t, 2)
	ls := &fakeLS{t: t, token: "ls-token", project: 7, fail: true}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	b := &Bridge{Queue: q, Client: &Client{BaseURL: srv.URL, Token: "ls-token"}, Project: 7,
		Tasks: TaskOptions{FromName: "class", ToName: "image"}, Log: testenv.Logger(t)}
	if _, err := b.Push(context.Background(), 2); err == nil {
		t.Fatal("push into a failing server succeeded")
	}
	if c := q.Counts(); c[queue.Available] != 2 {
		t.Fatalf("after a failed import: %v, want both items available again", c)
	}
	// A wrong token is refused like Label Studio does.
	b.Client.Token = "nope"
	if _, err := b.Client.Export(context.Background(), 7); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("export with a bad token: %v, want 401", err)
	}
}

func TestTasksAndParse(t *testing.T) {
	it := queue.Item{EventID: "d1", ImageURI: "http://cam/1.jpg", Model: "det", ModelVersion: "v3",
		Task: event.TaskDetection, BoxClasses: []string{"dent", "scratch"}, BoxScores: []float32{0.4, 0.3},
		BoxXYXY: [][]float32{{0.1, 0.2, 0.3, 0.5}, {10, 20, 30, 40}}}
	tasks := Tasks([]queue.Item{it}, TaskOptions{FromName: "box", ToName: "image"})
	p := tasks[0].Predictions[0]
	if tasks[0].Data[ImageKey] != "http://cam/1.jpg" || len(p.Result) != 1 || p.Result[0].Type != "rectanglelabels" {
		t.Fatalf("detection task %+v", tasks[0])
	}
	if w := *p.Result[0].Value.Width; w < 19.99 || w > 20.01 {
		t.Fatalf("width %v%%, want 20%%", w)
	}
	label, boxes := Parse(p.Result, "box")
	if label != "" || len(boxes) != 1 || boxes[0].Class != "dent" || boxes[0].XYXY[3] < 0.499 || boxes[0].XYXY[3] > 0.501 {
		t.Fatalf("parsed %q %+v", label, boxes)
	}
}
