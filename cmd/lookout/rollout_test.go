package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/canary/rollout"
	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// The rollout CLI drives the real admin API: start, promote, request a
// rollback, refuse self-approval, approve as a second user.
func TestRolloutCommand(t *testing.T) {
	conn, ch := testenv.ClickHouse(t)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"predictions":[[0.9,0.1]]}`)
	}))
	defer model.Close()
	cfg := config.Default()
	cfg.Canary.Backends = []config.CanaryBackend{{Name: "v1", URL: model.URL, Version: "1"}, {Name: "v2", URL: model.URL, Version: "2"}}
	cfg.Canary.Stable = "v1"
	log := testenv.Logger(t)
	rt, err := router.New(router.Options{Config: cfg.Canary, Registry: prometheus.NewRegistry(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := rollout.New(context.Background(), rollout.Options{Config: cfg.Canary, Router: rt,
		Audit: rollout.NewClickHouseAudit(conn, ch.Database), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []auth.Token{
		{Name: "olga", SHA256: auth.Hash("olga-t"), Roles: []auth.Role{auth.RoleViewer, auth.RoleOperator, auth.RoleApprover}},
		{Name: "alice", SHA256: auth.Hash("alice-t"), Roles: []auth.Role{auth.RoleApprover}},
	}
	mux := http.NewServeMux()
	rollout.API{C: ctl, Auth: auth.New(tokens, log, prometheus.NewRegistry())}.Register(mux)
	admin := httptest.NewServer(mux)
	defer admin.Close()

	cli := func(token string, args ...string) (string, error) {
		t.Setenv("LOOKOUT_TOKEN", token)
		var out bytes.Buffer
		o := rolloutOptions{admin: admin.URL, out: &out}
		err := o.run(context.Background(), cfg, log, args)
		return out.String(), err
	}
	out, err := cli("olga-t", "start", "-canary", "v2", "-steps", "10,100", "-shadow", "5", "-reason", "test")
	if err != nil {
		t.Fatal(err)
	}
	var ro rollout.Rollout
	if err := json.Unmarshal([]byte(out), &ro); err != nil || ro.Canary != "v2" || ro.Steps[0] != 10 || ro.ShadowPercent != 5 {
		t.Fatalf("start answered %s (%v)", out, err)
	}
	if rt.Route().CanaryPercent != 10 || rt.Route().RolloutID != ro.ID {
		t.Fatalf("route after start %+v", rt.Route())
	}
	if _, err := cli("olga-t", "promote", ro.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("olga-t", "rollback", "-reason", "bad"); err != nil {
		t.Fatal(err)
	}
	id := ctl.State().Rollbacks[0].ID
	if _, err := cli("olga-t", "approve", id); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("self-approval through the CLI: %v", err)
	}
	if _, err := cli("alice-t", "approve", id, "-reason", "ok"); err != nil {
		t.Fatal(err)
	}
	if rt.Route().Stable != "v1" {
		t.Fatalf("route after approved rollback %+v", rt.Route())
	}
	out, err = cli("olga-t", "audit", "-limit", "3")
	if err != nil || !strings.Contains(out, "rollback_approve") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if _, err := cli("", "status"); err == nil {
		t.Error("status without a token succeeded")
	}
}
