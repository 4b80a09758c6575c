package dashboards

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// promServer is a real Prometheus (Debian's package) scraping the lookout
// under test every second and loading the alert rules, so the dashboards'
// expressions are evaluated on the series lookout really exports.
type promServer struct {
	addr string
}

// startPrometheus runs prometheus as a subprocess scraping each target
// (job name → address), and stops it when the test ends.
func startPrometheus(t *testing.T, targets map[string]string) *promServer {
	t.Helper()
	bin := tool(t, "prometheus")
	dir := t.TempDir()
	rules, err := Files.ReadFile(AlertRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
`, filepath.Join(dir, "alerts.yml"))
	jobs := make([]string, 0, len(targets))
	for job := range targets {
		jobs = append(jobs, job)
	}
	sort.Strings(jobs)
	for _, job := range jobs {
		cfg += fmt.Sprintf("  - job_name: %q\n    static_configs:\n      - targets: [%q]\n", job, targets[job])
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freeAddr(t)}
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		stop(t, "prometheus", cmd, done, "")
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30 s\n%s", tail(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query evaluates expr now and returns the number of series in the result.
func (p *promServer) query(expr string) (int, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("decode query response: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return 1, nil
	}
	return len(r.Data.Result), nil
}

// ruleHealth returns each loaded rule's name, health and last error.
func (p *promServer) ruleHealth(t *testing.T) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			out[rule.Name] = strings.TrimSpace(rule.Health + " " + rule.LastError)
		}
	}
	return out
}

// checkPromQLReturnsData evaluates every dashboard expression on the real
// Prometheus and wants a non-empty result: a panel selecting a label value
// or metric shape lookout does not produce would otherwise stay blank.
// It also checks every alert rule is loaded and evaluates without error.
func checkPromQLReturnsData(t *testing.T, p *promServer) {
	values := map[string][]string{"instance": {".*"}, "model": {"defect-classifier"}, "version": {"v1"},
		"source": {"cam-1", "cam-2", "cam-3"}}
	queries := promQueries(t)
	var names []string
	for name := range queries {
		if !strings.HasPrefix(name, "alert ") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	// One deadline for all: rates need a few scrapes, after that a query
	// that is still empty stays empty.
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		expr := expandPromQL(queries[name], values)
		var n int
		var err error
		for {
			n, err = p.query(expr)
			if err != nil || n > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case err != nil:
			t.Errorf("%s: %v\n%s", name, err, expr)
		case n == 0:
			t.Errorf("%s: no series from a running lookout\n%s", name, expr)
		}
	}
	rules := alertRules(t)
	var health map[string]string
	deadline = time.Now().Add(30 * time.Second)
	for {
		health = p.ruleHealth(t)
		ok := len(health) == len(rules)
		for _, h := range health {
			ok = ok && h == "ok"
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, r := range rules {
		if h := health[r.Alert+r.Record]; h != "ok" {
			t.Errorf("alert %s on a real Prometheus: health %q", r.Alert, h)
		}
	}
}
