package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// testToken is the bearer token of the test's one user, who holds every
// role the router and the labelling queue ask for.
const testToken = "dashboards-test-token"

// services are the separate lookout processes the canary and
// active-learning dashboards read: `lookout router` in front of two
// fakemodel backends, and `lookout al serve`.
type services struct {
	routerAdmin, routerProxy, alAddr string
	images                           string
	stopCanary                       func()
}

// servicesConfig writes the YAML the router and al serve share: the API
// token and the router's two backends (lists of objects cannot come from
// LOOKOUT_* variables).
func servicesConfig(t *testing.T, stable, canary string) string {
	t.Helper()
	cfg := fmt.Sprintf(`auth:
  tokens:
    - {name: tester, sha256: %s, roles: [viewer, operator, approver, annotator, admin]}
canary:
  backends:
    - {name: v1, url: "http://%s", version: v1}
    - {name: v2, url: "http://%s", version: v2}
  stable: v1
`, auth.Hash(testToken), stable, canary)
	path := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServices starts the fakemodel backends, `lookout router` and
// `lookout al serve` next to the running lookout, sharing its broker and
// database. They are stopped when the test ends.
func startServices(t *testing.T, lk *lookout) *services {
	t.Helper()
	fake := fakemodelBinary(t)
	logs := t.TempDir()
	s := &services{routerAdmin: freeAddr(t), routerProxy: freeAddr(t), alAddr: freeAddr(t), images: t.TempDir()}
	v1, v2 := freeAddr(t), freeAddr(t)
	startProcess(t, "fakemodel v1", filepath.Join(logs, "v1.log"), nil, fake, "-listen", v1, "-class", "good", "-confidence", "0.9")
	// v2 answers like v1, so the rollout analysis can fail only once v2 is
	// killed (on error_rate), never earlier on confidence or class mix.
	s.stopCanary = startProcess(t, "fakemodel v2", filepath.Join(logs, "v2.log"), nil, fake, "-listen", v2, "-class", "good", "-confidence", "0.9")
	cfg := servicesConfig(t, v1, v2)
	env := append(append([]string(nil), lk.env...),
		"LOOKOUT_CANARY_LISTEN="+s.routerProxy,
		"LOOKOUT_CANARY_ADMIN_LISTEN="+s.routerAdmin,
		"LOOKOUT_CANARY_KEY_HEADER=X-Key", // many keys, so both arms get traffic; source stays X-Camera-Id
		// Analyse every second on few samples and abort on the first failure,
		// so killing the canary yields an automatic abort with its analysis.
		"LOOKOUT_CANARY_ROLLOUT_INTERVAL=1s",
		"LOOKOUT_CANARY_ROLLOUT_MIN_SAMPLES=5",
		"LOOKOUT_CANARY_ROLLOUT_FAILURE_LIMIT=1",
		"LOOKOUT_ACTIVELEARNING_LISTEN="+s.alAddr,
		"LOOKOUT_ACTIVELEARNING_SCHEDULE=true",
		"LOOKOUT_ACTIVELEARNING_INTERVAL=2s",
		"LOOKOUT_ACTIVELEARNING_RUN_SIZE=20",
		"LOOKOUT_ACTIVELEARNING_DUPLICATE_DISTANCE=0.0005", // the tiny test embedder packs images close
		"LOOKOUT_ACTIVELEARNING_LEASE_TIMEOUT=2s",
	)
	startProcess(t, "router", filepath.Join(logs, "router.log"), env, lk.bin, "router", "-config", cfg)
	startProcess(t, "al serve", filepath.Join(logs, "al.log"), env, lk.bin, "al", "serve", "-config", cfg)
	waitHTTP(t, "http://"+s.routerAdmin+"/healthz", filepath.Join(logs, "router.log"))
	waitHTTP(t, "http://"+s.alAddr+"/healthz", filepath.Join(logs, "al.log"))
	return s
}

// driveRouter starts a rollout of v2 at 50% with shadowing, sends requests
// through the proxy, then kills v2 and sends more, so that every router
// series (errors, retries, breaker, fallbacks) has children and the
// controller aborts the rollout on its analysis. A second rollout is
// promoted by hand and a rollback requested, which stays pending, so the
// audit trail has every kind of entry the dashboard shows.
func (s *services) driveRouter(t *testing.T) {
	t.Helper()
	start := map[string]any{"canary": "v2", "steps": []float64{50}, "step_pause": int64(time.Hour),
		"shadow_percent": 50.0, "reason": "dashboards test"}
	s.admin(t, "/api/v1/rollouts", start)
	s.send(t, 0, 80)
	s.stopCanary()
	s.send(t, 80, 80)
	var st struct {
		Rollout struct {
			ID           string `json:"id"`
			Status       string `json:"status"`
			LastAnalysis struct {
				Metrics []struct {
					Name   string `json:"name"`
					Status string `json:"status"`
				} `json:"metrics"`
			} `json:"last_analysis"`
		} `json:"rollout"`
	}
	testenv.Eventually(t, 30*time.Second, "the controller aborts the failing canary", func() bool {
		s.adminGet(t, "/api/v1/state", &st)
		return st.Rollout.Status == "aborted"
	})
	failed := map[string]string{}
	for _, m := range st.Rollout.LastAnalysis.Metrics {
		failed[m.Name] = m.Status
	}
	if failed["error_rate"] != "fail" {
		t.Errorf("rollout aborted on %v, want a failed error_rate once the canary is down", failed)
	}
	s.admin(t, "/api/v1/rollouts", start)
	s.adminGet(t, "/api/v1/state", &st)
	s.admin(t, "/api/v1/rollouts/"+st.Rollout.ID+"/promote", map[string]any{"reason": "dashboards test"})
	s.admin(t, "/api/v1/rollbacks", map[string]any{"reason": "dashboards test"})
}

// send routes n requests keyed by camera ids from first on.
func (s *services) send(t *testing.T, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		req, _ := http.NewRequest("POST", "http://"+s.routerProxy+"/v1/models/m:predict", strings.NewReader(`{"instances":[[0.1,0.2]]}`))
		req.Header.Set("X-Camera-Id", fmt.Sprintf("cam-%d", i%3+1))
		req.Header.Set("X-Request-Id", fmt.Sprintf("router-%d-%d", i, time.Now().UnixNano()))
		req.Header.Set("X-Image-Uri", fmt.Sprintf("file://%s/router-%d.png", s.images, i))
		req.Header.Set("X-Key", fmt.Sprintf("key-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("request %d through the router: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func (s *services) admin(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+s.routerAdmin+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s\n%s", path, resp.Status, out)
	}
}

func (s *services) adminGet(t *testing.T, path string, into any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.routerAdmin+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// labelOnce leases two queue items, labels one and leaves the other to
// expire. It reports false while selection has not queued anything yet.
func (s *services) labelOnce(t *testing.T) bool {
	t.Helper()
	var next struct {
		Items []struct {
			EventID        string `json:"event_id"`
			LeaseID        string `json:"lease_id"`
			PredictedClass string `json:"predicted_class"`
		} `json:"items"`
	}
	if code := s.al(t, "/api/al/next?n=2", nil, &next); code != http.StatusOK {
		t.Fatalf("al next: status %d", code)
	}
	if len(next.Items) == 0 {
		return false
	}
	it := next.Items[0]
	if code := s.al(t, "/api/al/items/"+it.EventID+"/submit", map[string]string{"lease_id": it.LeaseID, "label": it.PredictedClass}, nil); code != http.StatusOK {
		t.Fatalf("al submit %s: status %d", it.EventID, code)
	}
	return true
}

func (s *services) al(t *testing.T, path string, body, into any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	if body == nil {
		b = nil
	}
	req, _ := http.NewRequest("POST", "http://"+s.alAddr+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// startProcess runs a command with its output in logPath and returns a
// function that stops it (also called when the test ends).
func startProcess(t *testing.T, name, logPath string, env []string, bin string, args ...string) func() {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stopFn := func() {
		if stopped {
			return
		}
		stopped = true
		stop(t, name, cmd, done, "")
		f.Close()
	}
	t.Cleanup(stopFn)
	return stopFn
}

// waitHTTP waits up to 60 s for url to answer 200.
func waitHTTP(t *testing.T, url, logPath string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering after 60 s\n%s", url, tail(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var fakeOnce struct {
	path string
	err  error
	done bool
}

// fakemodelBinary builds canary/fakemodel next to the lookout binary.
func fakemodelBinary(t *testing.T) string {
	t.Helper()
	if !fakeOnce.done {
		fakeOnce.done = true
		fakeOnce.path = filepath.Join(filepath.Dir(lookoutBinary(t)), "fakemodel")
		cmd := exec.Command("go", "build", "-o", fakeOnce.path, "./canary/fakemodel")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeOnce.err = fmt.Errorf("go build ./canary/fakemodel: %v\n%s", err, out)
		}
	}
	if fakeOnce.err != nil {
		t.Fatal(fakeOnce.err)
	}
	return fakeOnce.path
}
