package web

import (
	"fmt"
	"html/template"
	"time"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"list": func(v ...string) []string { return v },
	"num":  func(v float64) string { return fmt.Sprintf("%.4g", v) },
}

var page = template.Must(template.New("page").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lookout · canary</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}.inconclusive{color:#777}
.msg{background:#fff3cd;padding:.5em 1em;border:1px solid #e0c36c}form.inline{display:inline}
</style></head><body>
<h1>lookout · canary rollouts</h1>
{{if .Message}}<p class="msg" id="message">{{.Message}}</p>{{end}}
{{if not .User}}
<form method="post" action="/login" id="login">
<label>API token <input type="password" name="token" id="token" autocomplete="off" required></label>
<button type="submit" id="login-button">Log in</button>
</form>
{{else}}
<p>Signed in as <b id="user">{{.User}}</b> ({{range $i, $r := .Roles}}{{if $i}}, {{end}}{{$r}}{{end}})
<form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit">Log out</button></form></p>

<h2>Serving</h2>
<p>stable <b id="stable">{{.State.Stable}}</b>{{with .State.Previous}} · rollback target <b id="previous">{{.}}</b>{{end}}
{{with .Route}}{{if .Canary}} · canary <b id="canary">{{.Canary}}</b> at <b id="weight">{{num .CanaryPercent}}%</b>{{if .ShadowPercent}}, shadow {{num .ShadowPercent}}%{{end}}{{end}}{{end}}</p>

{{with .State.Rollout}}
<h2>Rollout {{.ID}}</h2>
<p>{{.Canary}} against {{.Baseline}}: <b id="rollout-status">{{.Status}}</b>, step {{.Step}} of plan {{.Steps}} (started {{when .Started}} by {{.StartedBy}}){{with .Reason}} — {{.}}{{end}}</p>
{{if or (eq .Status "running") (eq .Status "paused")}}
{{$id := .ID}}{{range $a := (list "pause" "resume" "promote" "abort")}}<form class="inline" method="post" action="/ui/rollouts/{{$id}}/{{$a}}"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button type="submit" id="rollout-{{$a}}">{{$a}}</button></form> {{end}}
{{end}}
{{with .LastAnalysis}}
<p>Last analysis {{when .At}}: <span class="{{.Verdict}}" id="verdict">{{.Verdict}}</span></p>
<table><tr><th>metric</th><th>stable</th><th>canary</th><th>compared</th><th>threshold</th><th>samples</th><th>status</th></tr>
{{range .Metrics}}<tr><td>{{.Name}}</td><td>{{num .Stable}}</td><td>{{num .Canary}}</td><td>{{num .Value}}</td><td>{{num .Threshold}}</td><td>{{.Samples}}</td><td class="{{.Status}}">{{.Status}}{{with .Detail}} ({{.}}){{end}}</td></tr>{{end}}
</table>
{{end}}
{{end}}

<h2>Rollback requests</h2>
{{if .Pending}}<table id="pending"><tr><th>id</th><th>from → to</th><th>requested by</th><th>why</th><th>expires</th><th></th></tr>
{{range .Pending}}<tr id="rollback-{{.ID}}"><td>{{.ID}}</td><td>{{.From}} → {{.To}}</td><td>{{.RequestedBy}}</td><td>{{.Reason}}</td><td>{{when .Expires}}</td><td>
<form class="inline" method="post" action="/ui/rollbacks/{{.ID}}/approve"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button type="submit" id="approve-{{.ID}}">Approve</button></form>
<form class="inline" method="post" action="/ui/rollbacks/{{.ID}}/reject"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button type="submit" id="reject-{{.ID}}">Reject</button></form>
</td></tr>{{end}}</table>
{{else}}<p id="no-pending">No pending rollback requests.</p>{{end}}
{{if .State.Previous}}
<form method="post" action="/ui/rollbacks" id="request-rollback"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Request a rollback to {{.State.Previous}}, because <input name="reason" id="rollback-reason" required></label>
<button type="submit" id="request-rollback-button">Request rollback</button></form>
{{end}}

<h2>Audit trail</h2>
<table id="audit"><tr><th>#</th><th>when</th><th>who</th><th>what</th><th>why</th><th>stable</th><th>canary</th></tr>
{{range .Audit}}<tr><td>{{.Seq}}</td><td>{{when .At}}</td><td>{{.Actor}}</td><td>{{.Action}}{{with .RequestID}} {{.}}{{end}}</td><td>{{.Reason}}</td><td>{{.Stable}}</td><td>{{if .Canary}}{{.Canary}} {{num .Percent}}%{{end}}</td></tr>{{end}}
</table>
{{end}}
</body></html>
`))
