package web

import (
	"context"
	"fmt"
	"io"
	"net"
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

type stack struct {
	router *router.Router
	proxy  string // base URL of the router's listener
	admin  *httptest.Server
	ctl    *rollout.Controller
}

func modelServer(t *testing.T, class string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"predictions":[{"probs":{%q:0.9,"other":0.1}}]}`, class)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newStack wires what `lookout router` wires: proxy, controller on the real
// ClickHouse audit table, admin API and this page; v2 has been promoted over v1.
func newStack(t *testing.T) *stack {
	conn, ch := testenv.ClickHouse(t)
	cfg := config.Default().Canary
	cfg.Backends = []config.CanaryBackend{
		{Name: "v1", URL: modelServer(t, "good").URL, Version: "v1"},
		{Name: "v2", URL: modelServer(t, "dent").URL, Version: "v2"},
	}
	cfg.Stable = "v1"
	log := testenv.Logger(t)
	rt, err := router.New(router.Options{Config: cfg, Registry: prometheus.NewRegistry(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctl, err := rollout.New(ctx, rollout.Options{Config: cfg, Router: rt,
		Audit: rollout.NewClickHouseAudit(conn, ch.Database), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := ctl.Start(ctx, "olga", rollout.StartRequest{Canary: "v2", Reason: "new weights"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Act(ctx, "olga", "promote", ro.ID, "looked fine"); err != nil {
		t.Fatal(err)
	}
	tokens := []auth.Token{
		{Name: "olga", SHA256: auth.Hash("olga-secret-token"), Roles: []auth.Role{auth.RoleViewer, auth.RoleOperator, auth.RoleApprover}},
		{Name: "alice", SHA256: auth.Hash("alice-secret-token"), Roles: []auth.Role{auth.RoleViewer, auth.RoleApprover}},
	}
	a := auth.New(tokens, log, prometheus.NewRegistry())
	mux := http.NewServeMux()
	rollout.API{C: ctl, Auth: a}.Register(mux)
	mux.Handle("/", New(ctl, a, log))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rt.Serve(ln) }()
	t.Cleanup(func() { _ = rt.Shutdown(context.Background()) })
	s := &stack{router: rt, ctl: ctl, proxy: "http://" + ln.Addr().String(), admin: httptest.NewServer(mux)}
	t.Cleanup(s.admin.Close)
	return s
}

// servedBy sends one inference request through the proxy.
func (s *stack) servedBy(t *testing.T) string {
	resp, err := http.Post(s.proxy+"/v1/models/m:predict", "application/json", strings.NewReader(`{"instances":[{}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Lookout-Backend")
}

// One user requests a rollback in the browser and cannot approve it; a
// second user (approver) logs in, approves it, and traffic switches.
func TestBrowserSecondUserApprovesRollback(t *testing.T) {
	s := newStack(t)
	wd := startBrowser(t)
	if got := s.servedBy(t); got != "v2" {
		t.Fatalf("before: served by %s, want v2", got)
	}

	login := func(token string) {
		wd.open(s.admin.URL + "/")
		wd.wait("#token")
		wd.typeInto("#token", token)
		wd.click("#login-button")
		wd.wait("#user")
	}
	login("olga-secret-token")
	if u := wd.text("#user"); u != "olga" {
		t.Fatalf("logged in as %q", u)
	}
	if strings.Contains(wd.url(), "secret") {
		t.Fatalf("token in the URL: %s", wd.url())
	}
	cs := wd.cookies()
	if len(cs) != 1 || cs[0].Name != CookieName || !cs[0].HTTPOnly || cs[0].SameSite != "Strict" {
		t.Fatalf("session cookie %+v, want one HttpOnly SameSite=Strict %s", cs, CookieName)
	}
	if c := wd.script("return document.cookie"); c != "" {
		t.Fatalf("script can read the session cookie: %q", c)
	}
	if got := wd.text("#stable"); got != "v2" {
		t.Fatalf("page shows stable %q", got)
	}
	wd.typeInto("#rollback-reason", "v2 mislabels dents")
	wd.click("#request-rollback-button")
	wd.wait("#pending")
	pending := s.ctl.State().Rollbacks
	if len(pending) != 1 || pending[0].Status != rollout.RollbackPending || pending[0].RequestedBy != "olga" {
		t.Fatalf("rollback requests %+v", pending)
	}
	id := pending[0].ID
	// The requester's Approve is refused and nothing changes.
	wd.click("#approve-" + id)
	wd.wait("#message")
	if msg := wd.text("#message"); !strings.Contains(msg, "cannot approve") {
		t.Errorf("self-approval message %q", msg)
	}
	if got := s.servedBy(t); got != "v2" {
		t.Fatalf("after self-approval attempt: served by %s", got)
	}

	// Second user.
	wd.clearCookies()
	login("alice-secret-token")
	if u := wd.text("#user"); u != "alice" {
		t.Fatalf("logged in as %q", u)
	}
	if !wd.has("#approve-" + id) {
		t.Fatal("alice does not see the pending request")
	}
	wd.click("#approve-" + id)
	wd.wait("#no-pending")
	if got := wd.text("#stable"); got != "v1" {
		t.Errorf("page after approval shows stable %q", got)
	}
	if got := s.servedBy(t); got != "v1" {
		t.Fatalf("after approval: served by %s, want v1", got)
	}
	audit := wd.text("#audit")
	if !strings.Contains(audit, "rollback_approve") || !strings.Contains(audit, "alice") {
		t.Errorf("audit trail on the page:\n%s", audit)
	}
}
