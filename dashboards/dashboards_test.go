package dashboards

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

var uidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

// TestDashboardShape checks what Grafana needs to provision and render each
// dashboard: a stable uid, panels with unique ids and non-overlapping grid
// positions, data sources referenced through the datasource variables, and
// targets with the fields their data source reads.
func TestDashboardShape(t *testing.T) {
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.File, func(t *testing.T) {
			checkTopLevel(t, d)
			if prev, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, prev)
			}
			if prev, dup := titles[d.Title]; dup {
				t.Errorf("title %q also used by %s", d.Title, prev)
			}
			uids[d.UID], titles[d.Title] = d.File, d.File
			vars := checkVariables(t, d)
			checkPanels(t, d, vars)
		})
	}
}

func checkTopLevel(t *testing.T, d Dashboard) {
	t.Helper()
	if !uidPattern.MatchString(d.UID) {
		t.Errorf("uid %q: want 1–40 characters of [A-Za-z0-9_-]", d.UID)
	}
	if d.Title == "" || len(d.Panels) == 0 {
		t.Errorf("title %q with %d panels: want a title and panels", d.Title, len(d.Panels))
	}
	raw, err := fs.ReadFile(Files, d.File)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	// A numeric id ties the JSON to one Grafana database; provisioning
	// wants it absent or null.
	if id, ok := top["id"]; ok && id != nil {
		t.Errorf("dashboard has id %v; provisioned dashboards must not set one", id)
	}
	for _, key := range []string{"schemaVersion", "time", "templating"} {
		if _, ok := top[key]; !ok {
			t.Errorf("missing %q", key)
		}
	}
}

// checkVariables returns the dashboard's variables by name, after checking
// that the data source variables exist and that the scope variables model,
// version and source are there for the ClickHouse panels.
func checkVariables(t *testing.T, d Dashboard) map[string]Variable {
	t.Helper()
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		if _, dup := vars[v.Name]; dup {
			t.Errorf("variable %q defined twice", v.Name)
		}
		vars[v.Name] = v
		if v.Type == "query" && (v.Datasource == nil || v.QueryText() == "") {
			t.Errorf("query variable %q needs a datasource and a query", v.Name)
		}
	}
	for name, plugin := range map[string]string{"prometheus": Prometheus, "clickhouse": ClickHouse} {
		v, ok := vars[name]
		if !ok || v.Type != "datasource" || v.QueryText() != plugin {
			t.Errorf("want datasource variable %q of plugin %q, got %+v", name, plugin, v)
		}
	}
	for _, name := range []string{"model", "version", "source"} {
		if v, ok := vars[name]; !ok || !v.Multi || !v.IncludeAll {
			t.Errorf("want multi-value variable %q with All", name)
		}
	}
	return vars
}

func checkPanels(t *testing.T, d Dashboard, vars map[string]Variable) {
	t.Helper()
	ids := map[int]string{}
	var placed []Panel
	for _, p := range d.AllPanels() {
		if p.ID <= 0 {
			t.Errorf("panel %q: id %d, want > 0", p.Title, p.ID)
		} else if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel %q: id %d also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		g := p.GridPos
		if g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v must fit Grafana's 24-column grid", p.Title, g)
			continue
		}
		for _, q := range placed {
			if overlap(*g, *q.GridPos) {
				t.Errorf("panels %q and %q overlap", p.Title, q.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		checkPanelQueries(t, p, vars)
	}
}

func overlap(a, b GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

func checkPanelQueries(t *testing.T, p Panel, vars map[string]Variable) {
	t.Helper()
	if p.Datasource == nil {
		t.Errorf("panel %q has no datasource", p.Title)
		return
	}
	checkDatasourceRef(t, p.Title, *p.Datasource, vars)
	if len(p.Targets) == 0 {
		t.Errorf("panel %q has no targets", p.Title)
	}
	refs := map[string]bool{}
	for _, tg := range p.Targets {
		if tg.RefID == "" || refs[tg.RefID] {
			t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
		}
		refs[tg.RefID] = true
		ds := p.Datasource
		if tg.Datasource != nil {
			checkDatasourceRef(t, p.Title, *tg.Datasource, vars)
			ds = tg.Datasource
		}
		var text string
		switch ds.Type {
		case Prometheus:
			text = tg.Expr
		case ClickHouse:
			text = tg.RawSQL
			if tg.Format == nil || (*tg.Format != 0 && *tg.Format != 1) || (tg.QueryType != "timeseries" && tg.QueryType != "table") {
				t.Errorf("panel %q: ClickHouse target wants format 0|1 and queryType timeseries|table", p.Title)
			}
			if !strings.Contains(text, "$__timeFilter(") {
				t.Errorf("panel %q: ClickHouse query does not filter by the dashboard time range", p.Title)
			}
		}
		if strings.TrimSpace(text) == "" {
			t.Errorf("panel %q target %s: empty query", p.Title, tg.RefID)
		}
		for _, name := range referencedVars(text) {
			if _, ok := vars[name]; !ok {
				t.Errorf("panel %q: query uses undefined variable $%s", p.Title, name)
			}
		}
	}
}

func checkDatasourceRef(t *testing.T, panel string, ds Datasource, vars map[string]Variable) {
	t.Helper()
	if ds.Type != Prometheus && ds.Type != ClickHouse {
		t.Errorf("panel %q: datasource type %q, want %s or %s", panel, ds.Type, Prometheus, ClickHouse)
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(ds.UID, "${"), "}")
	v, ok := vars[name]
	if !ok || v.Type != "datasource" || v.QueryText() != ds.Type {
		t.Errorf("panel %q: datasource uid %q must name the datasource variable of plugin %s", panel, ds.UID, ds.Type)
	}
}

// TestMetricNameScanner pins the scanner the metric checks rely on.
func TestMetricNameScanner(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (stage) (rate(lookout_a_total{stage="x"}[5m])) / on (stage) lookout_b`:     "lookout_a_total lookout_b",
		`histogram_quantile(0.95, sum by (le) (rate(lookout_c_bucket[$__rate_interval])))`: "lookout_c_bucket",
		`time() - max(lookout_d{job="lookout"}) > 3e2 and on () up == 0`:                   "lookout_d up",
		`absent(up{job="lookout"})`: "up",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}
