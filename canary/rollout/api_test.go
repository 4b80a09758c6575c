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
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".drift_reports (run_at, model, source, test, status, flagged)")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	_ = b.Append(now.Add(-time.Hour), "m", "cam-1", "classes", "drift", uint8(1))
	_ = b.Append(now, "m", "cam-2", "embeddings", "drift", uint8(1))
	_ = b.Append(now, "m", "cam-3", "embeddings", "ok", uint8(0))
	_ = b.Append(now, "other", "cam-2", "embeddings", "drift", uint8(1))
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	got, err := NewDriftAlarms(conn, cfg.Database).Alarms(ctx, "m", now.Add(-time.Minute))
	if err != nil || len(got) != 1 || got[0] != "drift embeddings on cam-2" {
		t.Errorf("alarms %v %v", got, err)
	}
}
