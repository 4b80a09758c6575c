package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPromQLParses writes every dashboard expression (template variables
// substituted) into a rule file as recording rules and has the real
// Prometheus parser, through `promtool check rules`, accept them. Each
// expression is its own group so promtool's message names the panel.
func TestPromQLParses(t *testing.T) {
	promtool := tool(t, "promtool")
	queries := promQueries(t)
	names := make([]string, 0, len(queries))
	for name := range queries {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("groups:\n")
	n := 0
	for _, name := range names {
		if strings.HasPrefix(name, "alert ") {
			continue // checked as they are by TestAlertRules
		}
		expr := expandPromQL(queries[name], promValues)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: unexpanded variable in %q", name, expr)
			continue
		}
		n++
		fmt.Fprintf(&b, "  - name: %s\n    rules:\n      - record: lookout:dashboard_query_%d\n        expr: %s\n",
			jsonString(name), n, jsonString(expr))
	}
	if n == 0 {
		t.Fatal("no PromQL found in the dashboards")
	}
	path := filepath.Join(t.TempDir(), "dashboard_queries.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on %d dashboard expressions: %v\n%s", n, err, out)
	}
	t.Logf("promtool accepted %d dashboard expressions", n)
}

// jsonString quotes s for YAML (a JSON string is a valid YAML scalar).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestAlertRules runs `promtool check rules` on the alert rules and
// `promtool test rules` on their unit tests, from the embedded copies.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := t.TempDir()
	for _, p := range []string{AlertRulesPath, AlertRulesTestPath} {
		b, err := Files.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(AlertRulesPath)},
		{"test", "rules", filepath.Base(AlertRulesTestPath)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertHasRunbookAndTest checks each alert has the annotations the
// runbook relies on and at least one promtool test case.
func TestEveryAlertHasRunbookAndTest(t *testing.T) {
	rulesText, _ := Files.ReadFile(AlertRulesPath)
	testsText, _ := Files.ReadFile(AlertRulesTestPath)
	runbook, err := os.ReadFile(filepath.Join("..", "RUNBOOK.md"))
	if err != nil {
		t.Fatalf("RUNBOOK.md: %v", err)
	}
	for _, r := range alertRules(t) {
		if r.Alert == "" {
			continue
		}
		anchor := "RUNBOOK.md#" + strings.ToLower(r.Alert)
		if !strings.Contains(string(rulesText), anchor) {
			t.Errorf("alert %s: no runbook_url pointing at %s", r.Alert, anchor)
		}
		if !strings.Contains(string(runbook), "## "+r.Alert+"\n") {
			t.Errorf("alert %s: RUNBOOK.md has no section \"## %s\"", r.Alert, r.Alert)
		}
		if !strings.Contains(string(testsText), "alertname: "+r.Alert+"\n") {
			t.Errorf("alert %s: no test case in %s", r.Alert, AlertRulesTestPath)
		}
	}
}
