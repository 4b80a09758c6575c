package dashboards

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"gopkg.in/yaml.v3"

	"github.com/lookout-dev/lookout/internal/testenv"
)

// grafanaAlertingPath is the Grafana-managed alert provisioning file: rules
// on ClickHouse data Prometheus never sees.
var grafanaAlertingPath = filepath.Join("deploy", "grafana", "provisioning", "alerting", "lookout.yml")

type grafanaAlerting struct {
	ContactPoints []struct {
		Name      string `yaml:"name"`
		Receivers []struct {
			Type     string            `yaml:"type"`
			Settings map[string]string `yaml:"settings"`
		} `yaml:"receivers"`
	} `yaml:"contactPoints"`
	Policies []struct {
		Receiver string `yaml:"receiver"`
	} `yaml:"policies"`
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			UID       string `yaml:"uid"`
			Title     string `yaml:"title"`
			Condition string `yaml:"condition"`
			Data      []struct {
				RefID         string `yaml:"refId"`
				DatasourceUID string `yaml:"datasourceUid"`
				Model         struct {
					RawSQL     string `yaml:"rawSql"`
					Expression string `yaml:"expression"`
				} `yaml:"model"`
			} `yaml:"data"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadGrafanaAlerting(t *testing.T) grafanaAlerting {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), grafanaAlertingPath))
	if err != nil {
		t.Fatal(err)
	}
	var g grafanaAlerting
	if err := yaml.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", grafanaAlertingPath, err)
	}
	if len(g.Groups) == 0 {
		t.Fatalf("%s has no rule groups", grafanaAlertingPath)
	}
	return g
}

// TestGrafanaAlerting checks the Grafana-managed rules statically: queries
// go to a provisioned data source, the condition and expression inputs
// exist, each rule has a runbook section, and alerts go to the stack's
// Alertmanager. Their SQL runs on the real ClickHouse in
// TestAgainstRunningLookout.
func TestGrafanaAlerting(t *testing.T) {
	g := loadGrafanaAlerting(t)
	root := testenv.RepoRoot(t)
	runbook, err := os.ReadFile(filepath.Join(root, "RUNBOOK.md"))
	if err != nil {
		t.Fatal(err)
	}
	provisioned := map[string]bool{"__expr__": true, "lookout-clickhouse": true, "lookout-prometheus": true}
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			refs := map[string]bool{}
			for _, d := range r.Data {
				refs[d.RefID] = true
				if !provisioned[d.DatasourceUID] {
					t.Errorf("rule %s / %s: datasource %q is not provisioned", r.Title, d.RefID, d.DatasourceUID)
				}
				if e := d.Model.Expression; e != "" && !refs[e] {
					t.Errorf("rule %s / %s: expression input %q is not an earlier query", r.Title, d.RefID, e)
				}
			}
			if r.UID == "" || !refs[r.Condition] {
				t.Errorf("rule %s: want a uid and a condition naming one of its queries, got %q / %q", r.Title, r.UID, r.Condition)
			}
			if !strings.HasSuffix(r.Annotations["runbook_url"], "RUNBOOK.md#"+strings.ToLower(r.Title)) {
				t.Errorf("rule %s: runbook_url %q does not point at its section", r.Title, r.Annotations["runbook_url"])
			}
			if !strings.Contains(string(runbook), "## "+r.Title+"\n") {
				t.Errorf("rule %s: RUNBOOK.md has no section \"## %s\"", r.Title, r.Title)
			}
		}
	}
	if len(g.Policies) != 1 || len(g.ContactPoints) != 1 || g.Policies[0].Receiver != g.ContactPoints[0].Name {
		t.Fatalf("want one contact point and a policy routing to it, got %+v / %+v", g.ContactPoints, g.Policies)
	}
	for _, rc := range g.ContactPoints[0].Receivers {
		if rc.Type != "prometheus-alertmanager" || rc.Settings["url"] != "http://alertmanager:9093" {
			t.Errorf("receiver %+v: want the compose stack's Alertmanager", rc)
		}
	}
}

var lookoutDatabase = regexp.MustCompile(`\blookout\.`)

// checkGrafanaAlertSQL runs every ClickHouse query of the Grafana-managed
// rules on the test database: each must answer exactly one numeric row
// (an alert query without rows would be NoData, not OK).
func checkGrafanaAlertSQL(t *testing.T, conn driver.Conn, database string) {
	t.Helper()
	now := time.Now().Unix()
	for _, grp := range loadGrafanaAlerting(t).Groups {
		for _, r := range grp.Rules {
			for _, d := range r.Data {
				if d.DatasourceUID != "lookout-clickhouse" {
					continue
				}
				sql := expandClickHouse(lookoutDatabase.ReplaceAllString(d.Model.RawSQL, database+"."), now-30*86400, now, nil)
				rows, err := conn.Query(context.Background(), sql)
				if err != nil {
					t.Errorf("grafana rule %s / %s: %v\n%s", r.Title, d.RefID, err, sql)
					continue
				}
				n := 0
				for rows.Next() {
					var v float64
					if err := rows.Scan(&v); err != nil {
						t.Errorf("grafana rule %s / %s: %v", r.Title, d.RefID, err)
					}
					t.Logf("grafana rule %s / %s = %v", r.Title, d.RefID, v)
					n++
				}
				rows.Close()
				if n != 1 {
					t.Errorf("grafana rule %s / %s: %d rows, want 1\n%s", r.Title, d.RefID, n, sql)
				}
			}
		}
	}
}
