package rollout

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func testTokens() []auth.Token {
	return []auth.Token{
		{Name: "vic", SHA256: auth.Hash("vic-token"), Roles: []auth.Role{auth.RoleViewer}},
		{Name: "olga", SHA256: auth.Hash("olga-token"), Roles: []auth.Role{auth.RoleViewer, auth.RoleOperator, auth.RoleApprover}},
		{Name: "alice", SHA256: auth.Hash("alice-token"), Roles: []auth.Role{auth.RoleViewer, auth.RoleApprover}},
	}
}

func TestAPIRoles(t *testing.T) {
	e := promoted(t)
	mux := http.NewServeMux()
	API{C: e.c, Auth: auth.New(testTokens(), testenv.Logger(t), prometheus.NewRegistry())}.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(token, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := call("", "GET", "/api/v1/state", ""); code != 401 {
		t.Errorf("anonymous state: %d", code)
	}
	if code, body := call("vic-token", "GET", "/api/v1/state", ""); code != 200 || !strings.Contains(body, `"stable": "v2"`) {
		t.Errorf("viewer state: %d %s", code, body)
	}
	if code, _ := call("vic-token", "POST", "/api/v1/rollbacks", `{"reason":"x"}`); code != 403 {
		t.Errorf("viewer requesting a rollback: %d", code)
	}
	code, body := call("olga-token", "POST", "/api/v1/rollbacks", `{"reason":"bad"}`)
	if code != 200 {
		t.Fatalf("operator rollback request: %d %s", code, body)
	}
	id := e.c.State().Rollbacks[0].ID
	if code, _ := call("vic-token", "POST", "/api/v1/rollbacks/"+id+"/approve", ""); code != 403 {
		t.Errorf("viewer approving: %d", code)
	}
	if code, body := call("olga-token", "POST", "/api/v1/rollbacks/"+id+"/approve", ""); code != 403 {
		t.Errorf("self-approval: %d %s", code, body)
	}
	if code, body := call("alice-token", "POST", "/api/v1/rollbacks/"+id+"/approve", `{"reason":"ok"}`); code != 200 {
		t.Errorf("approval: %d %s", code, body)
	}
	if e.router.Route().Stable != "v1" {
		t.Error("approval did not switch traffic")
	}
	if code, body := call("vic-token", "GET", "/api/v1/audit?limit=2", ""); code != 200 || !strings.Contains(body, `"actor": "alice"`) {
		t.Errorf("audit: %d %s", code, body)
	}
	if code, _ := call("olga-token", "POST", "/api/v1/rollouts", `{"canary":"nope"}`); code != 400 {
		t.Errorf("unknown canary: %d", code)
	}
}

func TestDriftAlarmsFromClickHouse(t *testing.T) {
	conn, cfg := testenv.ClickHouse(t)
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".drift_reports (run_at, model, model_version, source, test, status, flagged)")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	_ = b.Append(now.Add(-time.Hour), "m", "v2", "cam-1", "classes", "drift", uint8(1))
	_ = b.Append(now, "m", "v2", "cam-2", "embeddings", "drift", uint8(1))
	_ = b.Append(now, "m", "v2", "cam-3", "embeddings", "ok", uint8(0))
	_ = b.Append(now, "m", "v1", "cam-4", "embeddings", "drift", uint8(1))
	_ = b.Append(now, "other", "v2", "cam-2", "embeddings", "drift", uint8(1))
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	q := AlarmQuery{Model: "m", Version: "v2", PreviousVersion: "v1", Since: now.Add(-time.Minute), Drift: true}
	got, err := NewClickHouseAlarms(conn, cfg.Database).Alarms(ctx, q)
	if err != nil || len(got) != 1 || got[0] != "drift embeddings on cam-2" {
		t.Errorf("alarms %v %v", got, err)
	}
	q.Drift = false
	if got, err := NewClickHouseAlarms(conn, cfg.Database).Alarms(ctx, q); err != nil || len(got) != 0 {
		t.Errorf("drift alarms off: %v %v", got, err)
	}
}

func TestEstimatedAccuracyAlarmsFromClickHouse(t *testing.T) {
	conn, cfg := testenv.ClickHouse(t)
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".drift_accuracy (run_at, model, model_version, source, method, value, n)")
	if err != nil {
		t.Fatal(err)
	}
	promoted := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	before, after := promoted.Add(-10*time.Minute), promoted.Add(10*time.Minute)
	rows := []struct {
		at           time.Time
		version, src string
		method       string
		value        float64
		n            uint32
	}{
		{before.Add(-time.Hour), "v1", "cam-1", "atc", 0.70, 500}, // older: the newest before promotion counts
		{before, "v1", "cam-1", "atc", 0.92, 500},
		{after, "v2", "cam-1", "atc", 0.95, 500},
		{after.Add(time.Minute), "v2", "cam-1", "atc", 0.80, 500}, // newest after: a 0.12 drop
		{before, "v1", "cam-2", "atc", 0.90, 500},
		{after, "v2", "cam-2", "atc", 0.88, 500}, // 0.02: within tolerance
		{before, "v1", "cam-3", "atc", 0.90, 500},
		{after, "v2", "cam-3", "atc", 0.50, 10}, // too few predictions to judge
		{before, "v1", "cam-4", "avg_confidence", 0.90, 500},
		{after, "v2", "cam-4", "avg_confidence", 0.50, 500}, // not the ATC estimate
		{after, "v2", "cam-5", "atc", 0.40, 500},            // nothing to compare with
	}
	for _, r := range rows {
		if err := b.Append(r.at, "m", r.version, r.src, r.method, r.value, r.n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	q := AlarmQuery{Model: "m", Version: "v2", PreviousVersion: "v1", Since: promoted, MaxAccuracyDrop: 0.05, MinSamples: 50}
	got, err := NewClickHouseAlarms(conn, cfg.Database).Alarms(ctx, q)
	want := "estimated accuracy on cam-1 0.800 for v2, was 0.920 for v1"
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("alarms %q %v, want [%q]", got, err, want)
	}
}
