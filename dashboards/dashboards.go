// Package dashboards holds lookout's operator view: the Grafana dashboards
// (grafana/*.json) and the Prometheus alert rules (prometheus/alerts.yml).
//
// The files are embedded so that tests read the very copy that
// docker-compose mounts into Grafana and Prometheus; there is no second
// version to drift apart. Load parses the dashboards into the small model
// the tests and tools need: panels, their data source and their queries.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
)

// Data source plugin types the dashboards use.
const (
	// Prometheus is Grafana's built-in Prometheus data source type.
	Prometheus = "prometheus"
	// ClickHouse is the official ClickHouse plugin's data source type.
	ClickHouse = "grafana-clickhouse-datasource"
)

// Files holds the embedded dashboards (grafana/*.json) and alert rules
// (prometheus/*.yml), with paths relative to this directory.
//
//go:embed grafana/*.json prometheus/*.yml
var Files embed.FS

// AlertRulesPath is the path of the Prometheus alert rules within Files.
const AlertRulesPath = "prometheus/alerts.yml"

// AlertRulesTestPath is the path of the promtool unit tests of the rules.
const AlertRulesTestPath = "prometheus/alerts_test.yml"

// Dashboard is the part of a Grafana dashboard lookout checks.
type Dashboard struct {
	// File is the dashboard's path within Files.
	File       string   `json:"-"`
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Tags       []string `json:"tags"`
	Panels     []Panel  `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel; rows carry their collapsed children in
// Panels.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	GridPos    *GridPos    `json:"gridPos"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// GridPos places a panel on Grafana's 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Datasource references a data source by plugin type and uid; the uid is
// normally a template variable such as ${prometheus}.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Target is one query of a panel: Expr for Prometheus, RawSQL for ClickHouse.
type Target struct {
	RefID      string      `json:"refId"`
	Datasource *Datasource `json:"datasource"`
	Expr       string      `json:"expr"`
	RawSQL     string      `json:"rawSql"`
	Format     *int        `json:"format"`
	QueryType  string      `json:"queryType"`
}

// Variable is a dashboard template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *Datasource     `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// QueryText returns the variable's query whether Grafana stored it as a
// string or as an object with a "query" field (newer Prometheus editor).
func (v Variable) QueryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" {
		return obj.Query
	}
	return v.Definition
}

// Query is one query of a dashboard, resolved to its data source type.
type Query struct {
	Dashboard string // uid
	Panel     string // panel title, or "variable <name>"
	RefID     string
	Type      string // Prometheus or ClickHouse
	Text      string // PromQL or SQL, with Grafana variables and macros unexpanded
}

// String names the query for messages: dashboard uid / panel / refId.
func (q Query) String() string {
	return fmt.Sprintf("%s / %s / %s", q.Dashboard, q.Panel, q.RefID)
}

// Load parses every embedded dashboard, sorted by file name.
func Load() ([]Dashboard, error) {
	names, err := fs.Glob(Files, "grafana/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Dashboard, 0, len(names))
	for _, name := range names {
		b, err := Files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		d.File = name
		out = append(out, d)
	}
	return out, nil
}

// AllPanels returns the dashboard's panels with row children flattened in,
// rows included.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Queries returns every panel target and every query variable of the
// dashboard. A target without its own data source inherits the panel's.
func (d Dashboard) Queries() []Query {
	var out []Query
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			ds := t.Datasource
			if ds == nil {
				ds = p.Datasource
			}
			q := Query{Dashboard: d.UID, Panel: p.Title, RefID: t.RefID}
			if ds != nil {
				q.Type = ds.Type
			}
			q.Text = t.Expr
			if q.Type == ClickHouse {
				q.Text = t.RawSQL
			}
			out = append(out, q)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" || v.Datasource == nil {
			continue
		}
		out = append(out, Query{Dashboard: d.UID, Panel: "variable " + v.Name, RefID: v.Name,
			Type: v.Datasource.Type, Text: v.QueryText()})
	}
	return out
}
