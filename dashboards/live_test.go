package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/drift/embed"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// prometheusSynthetic are series Prometheus itself adds for every scrape
// target; they never appear in a target's /metrics.
var prometheusSynthetic = map[string]bool{"up": true}

// TestAgainstRunningLookout builds the lookout binary, runs `lookout serve`
// and `lookout simulate` as subprocesses against an in-process Kafka broker
// and a fresh database on the local ClickHouse, pushes a bad event, an event
// whose image is missing and a ClickHouse outage of the labels table so
// that failure counters get children too, and then checks that
//   - every metric name used by a dashboard or an alert is in /metrics,
//   - every dashboard expression returns series on a real Prometheus
//     scraping that lookout, and every alert rule evaluates without error,
//   - every ClickHouse panel and variable query runs on the real server
//     with the Grafana macros expanded, and the key panels return rows,
//   - `lookout healthcheck` passes against the running service.
func TestAgainstRunningLookout(t *testing.T) {
	lk := startLookout(t)
	svc := startServices(t, lk)
	prom := startPrometheus(t, map[string]string{"lookout": lk.addr, "lookout-router": svc.routerAdmin,
		"lookout-al": svc.alAddr})
	svc.driveRouter(t)
	wanted := wantedMetrics(t)
	var scraped map[string]bool
	labelled := false
	testenv.Eventually(t, 3*time.Minute, "every metric the dashboards and alerts use", func() bool {
		// Selection needs embeddings of the simulated traffic first.
		labelled = labelled || svc.labelOnce(t)
		scraped = lk.scrape(t)
		for _, addr := range []string{svc.routerAdmin, svc.alAddr} {
			for name := range scrapeNames(t, addr) {
				scraped[name] = true
			}
		}
		return labelled && len(missing(wanted, scraped)) == 0
	})
	lk.stopSimulator(t)

	t.Run("metrics", func(t *testing.T) {
		for name, users := range wanted {
			if !scraped[name] && !prometheusSynthetic[name] {
				t.Errorf("metric %s (used by %s) is not exported by lookout", name, strings.Join(users, "; "))
			}
		}
		t.Logf("%d metric names checked against /metrics", len(wanted))
	})
	t.Run("promql", func(t *testing.T) {
		checkPromQLReturnsData(t, prom)
	})
	t.Run("clickhouse", func(t *testing.T) {
		checkClickHouseQueries(t, lk.conn, lk.database)
		checkGrafanaAlertSQL(t, lk.conn, lk.database)
	})
	t.Run("healthcheck", func(t *testing.T) {
		for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "-ready"}} {
			cmd := exec.Command(lk.bin, args...)
			cmd.Env = lk.env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("lookout %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		cmd := exec.Command(lk.bin, "healthcheck")
		cmd.Env = append(append([]string(nil), lk.env...), "LOOKOUT_HTTP_LISTEN="+freeAddr(t))
		if err := cmd.Run(); err == nil {
			t.Error("lookout healthcheck passed with nothing listening")
		}
	})
}

// wantedMetrics maps each metric name the dashboards and alerts select to
// the queries that use it.
func wantedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, expr := range promQueries(t) {
		for _, m := range metricNames(expandPromQL(expr, promValues)) {
			out[m] = append(out[m], name)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d metric names found in dashboards and alerts: %v", len(out), out)
	}
	return out
}

func missing(wanted map[string][]string, scraped map[string]bool) []string {
	var out []string
	for name := range wanted {
		if !scraped[name] && !prometheusSynthetic[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// lookout is a running `lookout serve` subprocess and its surroundings.
type lookout struct {
	bin, addr, database string
	env                 []string
	conn                driver.Conn
	simulator           *exec.Cmd
	simDone             chan error
}

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// lookoutBinary builds cmd/lookout once per test run.
func lookoutBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lookout-dashboards-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "lookout")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, "./cmd/lookout")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build ./cmd/lookout: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

func startLookout(t *testing.T) *lookout {
	t.Helper()
	bin := lookoutBinary(t)
	broker := testenv.Kafka(t, "predictions", "predictions-dlq", "labels")
	conn, ch := testenv.ClickHouse(t)
	images := t.TempDir()
	lk := &lookout{bin: bin, addr: freeAddr(t), database: ch.Database, conn: conn}
	lk.env = append(environWithout("LOOKOUT_"),
		"LOOKOUT_KAFKA_BROKERS="+broker,
		"LOOKOUT_CLICKHOUSE_ADDR="+strings.Join(ch.Addr, ","),
		"LOOKOUT_CLICKHOUSE_DATABASE="+ch.Database,
		"LOOKOUT_HTTP_LISTEN="+lk.addr,
		"LOOKOUT_EMBED_MODEL_PATH="+testenv.ModelPath(t),
		"LOOKOUT_EMBED_ORT_LIBRARY="+testenv.ORTLibrary(t),
		"LOOKOUT_EMBED_IMAGE_ROOT="+images,
		"LOOKOUT_EMBED_SAMPLE_RATE=0.5",
		"LOOKOUT_EMBED_FLUSH_INTERVAL=200ms",
		"LOOKOUT_INGEST_FLUSH_INTERVAL=200ms",
		"LOOKOUT_DRIFT_INTERVAL=1s",
		"LOOKOUT_DRIFT_WINDOW=10s", // wide enough to have samples even when ingest lags under load
		"LOOKOUT_DRIFT_REFERENCE_DURATION=3s",
		"LOOKOUT_DRIFT_MIN_SAMPLES=5",
		"LOOKOUT_DRIFT_MAX_SAMPLES=60",
		"LOOKOUT_DRIFT_PERMUTATIONS=100",
		"LOOKOUT_SIMULATE_IMAGE_DIR="+images,
		"LOOKOUT_SIMULATE_RATE=150",
		"LOOKOUT_SIMULATE_COUNT=100000",
		"LOOKOUT_SIMULATE_SHIFT_AFTER=0s",
		"LOOKOUT_SIMULATE_IMAGES_PER_CLASS=2",
		"LOOKOUT_SIMULATE_SEED=3",
	)
	logs := t.TempDir()
	serve := lk.command(t, filepath.Join(logs, "serve.log"), "serve")
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	t.Cleanup(func() { stop(t, "serve", serve, done, filepath.Join(logs, "serve.log")) })
	lk.waitReady(t, done, filepath.Join(logs, "serve.log"))

	// Park the labels table so the labels stage fails to store and retries;
	// it is restored once the retry counter shows up.
	lk.exec(t, fmt.Sprintf("RENAME TABLE %[1]s.labels TO %[1]s.labels_parked", lk.database))
	lk.simulator = lk.command(t, filepath.Join(logs, "simulate.log"), "simulate")
	lk.simDone = make(chan error, 1)
	go func() { lk.simDone <- lk.simulator.Wait() }()
	t.Cleanup(func() { lk.stopSimulator(t) })
	testenv.KcatProduce(t, broker, "predictions", append([]string{"bad-1\t{\"event_id\":"}, missingImageEvents(t, images)...))
	testenv.Eventually(t, 90*time.Second, "a store retry of the parked labels table", func() bool {
		return lk.scrape(t)["lookout_consumer_retries_total"]
	})
	lk.exec(t, fmt.Sprintf("RENAME TABLE %[1]s.labels_parked TO %[1]s.labels", lk.database))
	return lk
}

// missingImageEvents returns valid predictions whose file:// image does not
// exist, at least one of them sampled for embedding.
func missingImageEvents(t *testing.T, root string) []string {
	t.Helper()
	var lines []string
	sampled := false
	for i := range 8 {
		id := fmt.Sprintf("missing-image-%d", i)
		sampled = sampled || embed.Sampled(id, 0.5)
		lines = append(lines, fmt.Sprintf(`%s	{"event_id":%q,"ts":%q,"model":"defect-classifier","model_version":"v1","source":"cam-1","task":"classification","image_uri":"file://%s/missing-%d.png","probs":{"ok":0.9,"dent":0.1}}`,
			id, id, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), root, i))
	}
	if !sampled {
		t.Fatal("no missing-image event is sampled at rate 0.5; pick other ids")
	}
	return lines
}

func (lk *lookout) command(t *testing.T, logPath string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command(lk.bin, args...)
	cmd.Env = lk.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lookout %s: %v", strings.Join(args, " "), err)
	}
	return cmd
}

func (lk *lookout) waitReady(t *testing.T, done chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("lookout serve exited: %v\n%s", err, tail(logPath))
		default:
		}
		resp, err := http.Get("http://" + lk.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lookout serve not ready after 60 s\n%s", tail(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (lk *lookout) stopSimulator(t *testing.T) {
	t.Helper()
	if lk.simulator == nil {
		return
	}
	stop(t, "simulate", lk.simulator, lk.simDone, "")
	lk.simulator = nil
}

// stop interrupts a subprocess and waits for it to drain, killing it if it
// does not stop within 30 s.
func stop(t *testing.T, name string, cmd *exec.Cmd, done chan error, logPath string) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil && logPath != "" {
			t.Errorf("lookout %s exited with %v\n%s", name, err, tail(logPath))
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("lookout %s did not stop within 30 s of SIGINT", name)
	}
}

func (lk *lookout) exec(t *testing.T, sql string) {
	t.Helper()
	if err := lk.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// scrape returns the sample names in the service's /metrics.
func (lk *lookout) scrape(t *testing.T) map[string]bool {
	t.Helper()
	return scrapeNames(t, lk.addr)
}

// scrapeNames returns the sample names in /metrics at addr (histograms
// appear as their _bucket, _sum and _count series).
func scrapeNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return names
}

func environWithout(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tail returns the end of a log file for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// checkClickHouseQueries runs every ClickHouse variable and panel query of
// every dashboard on the real server. Variables are resolved in order, as
// Grafana does with "All" selected: each variable query runs with the
// values of the variables before it, and its result becomes its value.
func checkClickHouseQueries(t *testing.T, conn driver.Conn, database string) {
	now := time.Now().Unix()
	from, to := now-3600, now+60
	mustHaveRows := map[string]bool{
		"Predictions / s by source": true, "Predicted class mix": true, "Report history": true,
		"Estimated vs realised accuracy": true, "Mean confidence by version": true, "Flagged tests by source": true,
		// canary: the router's events after ingest, and its audit trail
		"Current route and rollout": true, "Canary weight (audit)": true, "Analysis verdicts": true, "Pending rollback requests": true,
		"Audit trail": true, "Mean confidence by arm": true, "Routed predictions by arm": true,
		"Predicted class mix by arm": true, "Confidence quantiles by arm": true, "Shadow agreement": true,
		// active learning: scheduled picks and the test's lease and submit
		"Picks per day by reason": true, "Picks per day by source": true, "Picks per day by class": true,
		"Queue transitions per hour": true, "Annotators": true, "Recent picks": true,
	}
	ran := 0
	for _, d := range loadDashboards(t) {
		values := map[string][]string{"database": {database}, "instance": {".*"}}
		for _, v := range d.Templating.List {
			if v.Type != "query" || v.Datasource == nil || v.Datasource.Type != ClickHouse {
				continue
			}
			sql := expandClickHouse(v.QueryText(), from, to, values)
			rows := queryStrings(t, conn, d.UID+" variable "+v.Name, sql)
			if len(rows) == 0 {
				t.Errorf("%s: variable %s has no values\n%s", d.UID, v.Name, sql)
				rows = []string{""}
			}
			values[v.Name] = rows
			ran++
		}
		for _, q := range d.Queries() {
			if q.Type != ClickHouse || strings.HasPrefix(q.Panel, "variable ") {
				continue
			}
			sql := expandClickHouse(q.Text, from, to, values)
			n := queryCount(t, conn, q.String(), sql)
			t.Logf("%s: %d rows", q, n)
			if n == 0 && mustHaveRows[q.Panel] {
				t.Errorf("%s returned no rows on a database with traffic\n%s", q, sql)
			}
			ran++
		}
	}
	if ran == 0 {
		t.Fatal("no ClickHouse queries in the dashboards")
	}
}

func queryCount(t *testing.T, conn driver.Conn, name, sql string) int {
	t.Helper()
	if strings.Contains(sql, "$") {
		t.Errorf("%s: unexpanded macro or variable\n%s", name, sql)
		return 0
	}
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Errorf("%s: %v\n%s", name, err, sql)
		return 0
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	return n
}

func queryStrings(t *testing.T, conn driver.Conn, name, sql string) []string {
	t.Helper()
	if strings.Contains(sql, "$") {
		t.Errorf("%s: unexpanded macro or variable\n%s", name, sql)
		return nil
	}
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Errorf("%s: %v\n%s", name, err, sql)
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Errorf("%s: %v", name, err)
			return out
		}
		out = append(out, s)
	}
	return out
}
