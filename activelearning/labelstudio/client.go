package labelstudio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client calls a Label Studio server's API with an access token.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// ImportResult is Label Studio's answer to an import: synchronous servers
// report counts, asynchronous ones an import id to poll.
type ImportResult struct {
	TaskCount       int   `json:"task_count"`
	PredictionCount int   `json:"prediction_count"`
	ImportID        int   `json:"import"`
	TaskIDs         []int `json:"task_ids,omitempty"`
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Token "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("label studio %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("label studio %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("label studio %s %s: %s: %.300s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("label studio %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Import adds tasks to project through its import API (one request; Label
// Studio accepts up to 250k tasks per call).
func (c *Client) Import(ctx context.Context, project int, tasks []Task) (ImportResult, error) {
	var res ImportResult
	err := c.do(ctx, http.MethodPost, "/api/projects/"+strconv.Itoa(project)+"/import", tasks, &res)
	return res, err
}

// ExportedTask is a task as Label Studio's JSON export returns it.
type ExportedTask struct {
	ID          int            `json:"id"`
	Data        map[string]any `json:"data"`
	Annotations []Annotation   `json:"annotations"`
}

// Annotation is one annotator's answer to a task.
type Annotation struct {
	ID           int             `json:"id"`
	Result       []Result        `json:"result"`
	WasCancelled bool            `json:"was_cancelled"`
	CompletedBy  json.RawMessage `json:"completed_by"`
}

// Export returns the project's annotated tasks
// (GET /api/projects/{id}/export?exportType=JSON).
func (c *Client) Export(ctx context.Context, project int) ([]ExportedTask, error) {
	var tasks []ExportedTask
	err := c.do(ctx, http.MethodGet, "/api/projects/"+strconv.Itoa(project)+"/export?exportType=JSON", nil, &tasks)
	return tasks, err
}
