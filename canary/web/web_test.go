package web

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lookout-dev/lookout/canary/rollout"
)

// client logs in with token and returns a cookie-keeping client and the
// page's CSRF token.
func client(t *testing.T, s *stack, token string) (*http.Client, string) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(s.admin.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no CSRF token after login:\n%s", b)
	}
	return c, string(m[1])
}

func TestFormsNeedCSRFAndSameOrigin(t *testing.T) {
	s := newStack(t)
	c, csrf := client(t, s, "olga-secret-token")
	post := func(path string, v url.Values, origin string) int {
		req, _ := http.NewRequest("POST", s.admin.URL+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/ui/rollbacks", url.Values{"reason": {"x"}}, ""); code != 403 {
		t.Errorf("without CSRF token: %d, want 403", code)
	}
	if code := post("/ui/rollbacks", url.Values{"reason": {"x"}, "csrf": {csrf}}, "http://evil.example"); code != 403 {
		t.Errorf("cross-origin: %d, want 403", code)
	}
	if n := len(s.ctl.State().Rollbacks); n != 0 {
		t.Fatalf("refused forms created %d rollback requests", n)
	}
	if code := post("/ui/rollbacks", url.Values{"reason": {"x"}, "csrf": {csrf}}, s.admin.URL); code != http.StatusSeeOther {
		t.Errorf("valid form: %d, want 303", code)
	}
	if n := len(s.ctl.State().Rollbacks); n != 1 {
		t.Fatalf("valid form created %d rollback requests", n)
	}
	// alice's session cannot be driven with olga's CSRF token.
	c2, _ := client(t, s, "alice-secret-token")
	c = c2
	id := s.ctl.State().Rollbacks[0].ID
	if code := post("/ui/rollbacks/"+id+"/approve", url.Values{"csrf": {csrf}}, ""); code != 403 {
		t.Errorf("someone else's CSRF token: %d, want 403", code)
	}
	if s.router.Route().Stable != "v2" {
		t.Error("a refused form switched traffic")
	}
}

func TestBadTokenLogsNobodyIn(t *testing.T) {
	s := newStack(t)
	resp, err := http.PostForm(s.admin.URL+"/login", url.Values{"token": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "not valid") || len(resp.Cookies()) != 0 || strings.Contains(string(b), `id="user"`) {
		t.Errorf("bad token login: cookies %v body\n%s", resp.Cookies(), b)
	}
}

// The page renders a running rollout with its analysis and the operator's buttons.
func TestPageShowsRunningRolloutAndAnalysis(t *testing.T) {
	s := newStack(t)
	ctx := t.Context()
	if _, err := s.ctl.Start(ctx, "olga", rollout.StartRequest{Canary: "v1", Steps: []float64{25, 100}}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		s.servedBy(t)
	}
	if err := s.ctl.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	c, _ := client(t, s, "olga-secret-token")
	resp, err := c.Get(s.admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{`id="canary">v1<`, `id="weight">25%<`, `id="rollout-status">running<`,
		`id="verdict">inconclusive<`, "error_rate", "class_js_distance", `id="rollout-abort"`, "rollout_start"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
			break
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
}
