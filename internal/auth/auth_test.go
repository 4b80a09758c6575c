package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequire(t *testing.T) {
	tokens := []Token{
		{Name: "alice", SHA256: Hash("alice-token"), Roles: []Role{RoleApprover}},
		{Name: "bob", SHA256: Hash("bob-token"), Roles: []Role{RoleViewer}},
		{Name: "root", SHA256: Hash("root-token"), Roles: []Role{RoleAdmin}},
	}
	if err := Validate(tokens); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a := New(tokens, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	h := a.Require(RoleApprover, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		io.WriteString(w, p.Name)
	}))
	for _, c := range []struct {
		header string
		code   int
		body   string
	}{
		{"", 401, ""},
		{"Bearer nope", 401, ""},
		{"Bearer bob-token", 403, ""},
		{"Bearer alice-token", 200, "alice"},
		{"bearer root-token", 200, "root"},
	} {
		req := httptest.NewRequest("POST", "/approve", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.code || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("%q: %d %q, want %d %q", c.header, rec.Code, rec.Body.String(), c.code, c.body)
		}
	}
	if got := testutil.ToFloat64(a.refused.WithLabelValues("forbidden")); got != 1 {
		t.Errorf("forbidden refusals = %v", got)
	}
	if strings.Contains(logs.String(), "token\"") || strings.Contains(logs.String(), "nope") || !strings.Contains(logs.String(), "principal=bob") {
		t.Errorf("refusal log leaks the token or misses the principal:\n%s", logs.String())
	}
}

func TestValidate(t *testing.T) {
	for _, bad := range [][]Token{
		{{Name: "", SHA256: Hash("x"), Roles: []Role{RoleViewer}}},
		{{Name: "a", SHA256: "abc", Roles: []Role{RoleViewer}}},
		{{Name: "a", SHA256: Hash("x"), Roles: []Role{"god"}}},
		{{Name: "a", SHA256: Hash("x")}},
		{{Name: "a", SHA256: Hash("x"), Roles: []Role{RoleViewer}}, {Name: "a", SHA256: Hash("y"), Roles: []Role{RoleViewer}}},
	} {
		if Validate(bad) == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
