package dashboards

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// varRef matches Grafana variable references: $name, ${name} and
// ${name:format}. Built-ins ($__interval, $__timeFilter, …) start with "__".
var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}|\$([A-Za-z0-9_]+)`)

// referencedVars returns the names of the non-built-in variables q uses.
func referencedVars(q string) []string {
	seen := map[string]bool{}
	for _, m := range varRef.FindAllStringSubmatch(q, -1) {
		name := m[1] + m[3]
		if !strings.HasPrefix(name, "__") {
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// expandVars replaces user variables the way Grafana formats them: a
// multi-value variable becomes a regex alternation by default and a list
// of quoted strings with :singlequote. Unknown variables are left in place
// so the caller can report them.
func expandVars(q string, values map[string][]string) string {
	return varRef.ReplaceAllStringFunc(q, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name, format := m[1]+m[3], m[2]
		vals, ok := values[name]
		if !ok {
			return ref
		}
		switch format {
		case "singlequote":
			quoted := make([]string, len(vals))
			for i, v := range vals {
				quoted[i] = "'" + strings.ReplaceAll(v, "'", "\\'") + "'"
			}
			return strings.Join(quoted, ",")
		case "", "regex":
			// The test values contain no regex metacharacters, so no
			// escaping is needed (Grafana escapes them with \\).
			if len(vals) == 1 {
				return vals[0]
			}
			return "(" + strings.Join(vals, "|") + ")"
		case "raw":
			return strings.Join(vals, ",")
		}
		return ref
	})
}

// expandPromQL substitutes Grafana's interval variables and the given
// template variables in a PromQL expression.
func expandPromQL(expr string, values map[string][]string) string {
	r := strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m",
		"$__interval", "1m", "${__interval}", "1m", "$__range", "1h", "${__range}", "1h")
	return expandVars(r.Replace(expr), values)
}

var (
	timeFilterMacro = regexp.MustCompile(`\$__timeFilter\(\s*([A-Za-z0-9_.]+)\s*\)`)
	conditionalAll  = regexp.MustCompile(`\$__conditionalAll\(((?:[^()]|\([^()]*\))*),\s*\$\{?[A-Za-z0-9_]+\}?\s*\)`)
)

// expandClickHouse substitutes the grafana-clickhouse-datasource macros as
// the plugin documents them (v4), for the range [from, to] in unix seconds,
// and the template variables.
func expandClickHouse(sql string, from, to int64, values map[string][]string) string {
	sql = timeFilterMacro.ReplaceAllString(sql, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", from, to))
	sql = conditionalAll.ReplaceAllString(sql, "$1")
	sql = strings.NewReplacer(
		"$__fromTime", fmt.Sprintf("toDateTime(%d)", from),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", to),
		"$__interval_s", "60",
	).Replace(sql)
	return expandVars(sql, values)
}

// labelValues matches a Prometheus variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)

// promExpr turns a Prometheus panel or variable query into a PromQL
// expression: label_values(m, l) becomes m.
func promExpr(q string) string {
	if m := labelValues.FindStringSubmatch(strings.TrimSpace(q)); m != nil {
		return m[1]
	}
	return q
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promToken    = regexp.MustCompile(`[A-Za-z0-9_:.]+`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true,
		"Inf": true, "NaN": true, "atan2": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: every
// identifier that is not a function call, keyword, label name (inside
// braces or grouping clauses), duration or number. It is a scanner, not a
// parser; promtool checks that the expression is valid PromQL.
func metricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	seen := map[string]bool{}
	for _, loc := range promToken.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		c := tok[0]
		if c >= '0' && c <= '9' || c == '.' || promKeywords[tok] {
			continue
		}
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") {
			continue // a function or aggregation
		}
		seen[tok] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// alertRule is the part of a Prometheus rule file the tests read.
type alertRule struct {
	Alert  string `yaml:"alert"`
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

// alertRules parses the embedded alert rules.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := Files.ReadFile(AlertRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", AlertRulesPath, err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", AlertRulesPath)
	}
	return out
}

// tool returns the path of a required command-line tool or fails the test
// with how to get it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make setup` (scripts/setup.sh installs it)", name)
	}
	return p
}

func loadDashboards(t *testing.T) []Dashboard {
	t.Helper()
	ds, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		t.Fatal("no dashboards embedded")
	}
	return ds
}

// promQueries returns every PromQL expression of the dashboards and alert
// rules, labelled for error messages.
func promQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range loadDashboards(t) {
		for _, q := range d.Queries() {
			if q.Type == Prometheus {
				out[q.String()] = promExpr(q.Text)
			}
		}
	}
	for _, r := range alertRules(t) {
		out["alert "+r.Alert+r.Record] = r.Expr
	}
	return out
}

// promValues are the template variable values substituted into PromQL.
var promValues = map[string][]string{
	"instance": {"lookout-1"}, "model": {"defect-classifier"}, "version": {"v1"},
	"source": {"cam-1", "cam-2"}, "database": {"lookout"},
}
