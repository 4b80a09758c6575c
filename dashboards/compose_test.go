package dashboards

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// composeConfig is the part of `docker-compose config` output the tests read.
type composeConfig struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// compose runs Debian's docker-compose (v1, no engine needed for config)
// in the repository root and returns its output.
func compose(t *testing.T, envFile string, args ...string) ([]byte, error) {
	t.Helper()
	bin := tool(t, "docker-compose")
	full := append([]string{"-f", "docker-compose.yml", "--env-file", envFile}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = testenv.RepoRoot(t)
	// Only the env file may feed the substitution, not the test's environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &composeError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type composeError struct {
	err    error
	stderr string
}

func (e *composeError) Error() string { return e.err.Error() + ": " + e.stderr }

// TestComposeFile validates docker-compose.yml with the env file template,
// with every profile, and checks what `config` cannot: bind-mounted files
// exist, the stack mounts the embedded dashboards and rules, images are
// pinned, passwords come only from the env file and are required.
func TestComposeFile(t *testing.T) {
	if _, err := compose(t, ".env.example", "config", "-q"); err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	if _, err := compose(t, ".env.example", "--profile", "demo", "--profile", "labelstudio", "--profile", "canary", "--profile", "activelearning", "config", "-q"); err != nil {
		t.Fatalf("docker-compose config with profiles: %v", err)
	}
	out, err := compose(t, ".env.example", "config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg composeConfig
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("parse docker-compose config output: %v", err)
	}
	for _, name := range []string{"kafka", "clickhouse", "lookout", "prometheus", "alertmanager", "grafana", "simulate", "label-studio", "router", "al"} {
		if _, ok := cfg.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	root := testenv.RepoRoot(t)
	mounts := map[string]string{} // container path → host path, for bind mounts
	for name, s := range cfg.Services {
		if s.Build == nil && (s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":")) {
			t.Errorf("service %s: image %q must be pinned to a tag", name, s.Image)
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if !strings.HasPrefix(parts[0], "/") {
				continue // a named volume
			}
			if _, err := os.Stat(parts[0]); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, parts[0])
			}
			mounts[name+" "+parts[1]] = parts[0]
		}
	}
	for target, want := range map[string]string{
		"grafana /etc/grafana/dashboards/lookout":         filepath.Join(root, "dashboards", "grafana"),
		"prometheus /etc/prometheus/rules/alerts.yml":     filepath.Join(root, "dashboards", AlertRulesPath),
		"prometheus /etc/prometheus/prometheus.yml":       filepath.Join(root, "deploy", "prometheus", "prometheus.yml"),
		"lookout /etc/lookout/lookout.yaml":               filepath.Join(root, "deploy", "lookout.yaml"),
		"grafana /etc/grafana/provisioning":               filepath.Join(root, "deploy", "grafana", "provisioning"),
		"alertmanager /etc/alertmanager/alertmanager.yml": filepath.Join(root, "deploy", "alertmanager", "alertmanager.yml"),
	} {
		if got := mounts[target]; got != want {
			t.Errorf("%s: mounted from %q, want %q", target, got, want)
		}
	}
	known := map[string]bool{"LOOKOUT_CONFIG": true}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	for name, s := range cfg.Services {
		for k := range s.Environment {
			if strings.HasPrefix(k, config.EnvPrefix) && !known[k] {
				t.Errorf("service %s sets %s, which is no lookout configuration key (typo?)", name, k)
			}
		}
	}
	if hc := cfg.Services["lookout"].Healthcheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "lookout healthcheck") {
		t.Errorf("lookout service: want a healthcheck running `lookout healthcheck`, got %+v", hc)
	}
	checkNoSecretsInCompose(t, root)
}

// checkNoSecretsInCompose makes sure every password-like variable in
// docker-compose.yml is a required substitution from the env file, and that
// leaving one out of the env file stops compose.
func checkNoSecretsInCompose(t *testing.T, root string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), ":latest") {
		t.Error("docker-compose.yml: pin image defaults to a version, not :latest")
	}
	secretLine := regexp.MustCompile(`(?i)^\s*[A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*:\s*(.*)$`)
	for i, line := range strings.Split(string(raw), "\n") {
		m := secretLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !regexp.MustCompile(`^\$\{[A-Z_]+:\?[^}]*\}$`).MatchString(strings.TrimSpace(m[2])) {
			t.Errorf("docker-compose.yml:%d: %q must be a required ${VAR:?…} from .env, not a value", i+1, strings.TrimSpace(line))
		}
	}
	example, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(example), "\n") {
		if !strings.HasPrefix(line, "CLICKHOUSE_LOOKOUT_PASSWORD=") {
			kept = append(kept, line)
		}
	}
	env := filepath.Join(t.TempDir(), "no-password.env")
	if err := os.WriteFile(env, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = compose(t, env, "config", "-q")
	if err == nil || !strings.Contains(err.Error(), "CLICKHOUSE_LOOKOUT_PASSWORD") {
		t.Errorf("compose without CLICKHOUSE_LOOKOUT_PASSWORD: err = %v, want a message naming it", err)
	}
}

// TestPrometheusConfig runs `promtool check config` on deploy's
// prometheus.yml with the rule path pointed at the repository's copy, so
// the rules load exactly as in the container.
func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool")
	root := testenv.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const inContainer = "/etc/prometheus/rules/alerts.yml"
	if !strings.Contains(string(raw), inContainer) {
		t.Fatalf("prometheus.yml does not load %s", inContainer)
	}
	local := strings.ReplaceAll(string(raw), inContainer, filepath.Join(root, "dashboards", AlertRulesPath))
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range cfg.ScrapeConfigs {
		found = found || s.JobName == "lookout"
	}
	if !found {
		t.Error(`no scrape job "lookout": the alert rules and dashboards select job="lookout"`)
	}
}

// TestAlertmanagerConfig checks the routing tree names only receivers that
// exist (amtool is not installed here; the YAML structure is what matters).
func TestAlertmanagerConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "deploy", "alertmanager", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Receiver string  `yaml:"receiver"`
		Routes   []route `yaml:"routes"`
	}
	var cfg struct {
		Route     route `yaml:"route"`
		Receivers []struct {
			Name string `yaml:"name"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range cfg.Receivers {
		names[r.Name] = true
	}
	var walk func(route)
	walk = func(r route) {
		if r.Receiver != "" && !names[r.Receiver] {
			t.Errorf("route to unknown receiver %q", r.Receiver)
		}
		for _, c := range r.Routes {
			walk(c)
		}
	}
	if cfg.Route.Receiver == "" {
		t.Error("the root route needs a receiver")
	}
	walk(cfg.Route)
}

// TestGrafanaProvisioning checks the provisioned data source uids are the
// ones the dashboards' datasource variables default to.
func TestGrafanaProvisioning(t *testing.T) {
	root := testenv.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "lookout.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, d := range prov.Datasources {
		uids[d.UID] = d.Type
	}
	for _, d := range loadDashboards(t) {
		b, _ := Files.ReadFile(d.File)
		var doc struct {
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Type    string `json:"type"`
					Query   any    `json:"query"`
					Current struct {
						Value any `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, v := range doc.Templating.List {
			if v.Type != "datasource" {
				continue
			}
			uid, _ := v.Current.Value.(string)
			if got, ok := uids[uid]; !ok || got != v.Query {
				t.Errorf("%s: datasource variable %s defaults to uid %q, provisioned as %q (want plugin %v)", d.UID, v.Name, uid, got, v.Query)
			}
		}
	}
}

// TestContainerConfig checks deploy/lookout.yaml is a valid lookout
// configuration for the compose network, by running the real loader.
func TestContainerConfig(t *testing.T) {
	root := testenv.RepoRoot(t)
	cmd := exec.Command(lookoutBinary(t), "config", "-config", filepath.Join(root, "deploy", "lookout.yaml"))
	cmd.Env = append(environWithout("LOOKOUT_"), "LOOKOUT_CLICKHOUSE_PASSWORD=x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lookout config -config deploy/lookout.yaml: %v\n%s", err, out)
	}
	var eff struct {
		Kafka struct {
			Brokers []string `yaml:"brokers"`
		} `yaml:"kafka"`
		ClickHouse struct {
			Addr []string `yaml:"addr"`
		} `yaml:"clickhouse"`
		HTTP struct {
			Listen string `yaml:"listen"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(out, &eff); err != nil {
		t.Fatalf("parse `lookout config` output: %v\n%s", err, out)
	}
	if strings.Join(eff.Kafka.Brokers, ",") != "kafka:9092" || strings.Join(eff.ClickHouse.Addr, ",") != "clickhouse:9000" || eff.HTTP.Listen != "0.0.0.0:9464" {
		t.Errorf("effective config: brokers %v, clickhouse %v, listen %q; want the compose services and 0.0.0.0:9464",
			eff.Kafka.Brokers, eff.ClickHouse.Addr, eff.HTTP.Listen)
	}
}

// TestDockerfile checks the Dockerfile statically (no engine runs here):
// stages referenced by COPY --from exist, copied repository files exist and
// are not excluded by .dockerignore, and the image runs as a non-root user
// with a HEALTHCHECK.
func TestDockerfile(t *testing.T) {
	root := testenv.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	stages := map[string]bool{}
	var user, health, final string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			final = f[1]
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		case "COPY":
			checkCopy(t, root, string(ignore), f[1:], stages)
		case "USER":
			user = f[1]
		case "HEALTHCHECK":
			health = line
		}
	}
	if final != "debian:12-slim" {
		t.Errorf("runtime base %q, want debian:12-slim", final)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	if !strings.Contains(health, "lookout\", \"healthcheck") {
		t.Errorf("HEALTHCHECK %q must run `lookout healthcheck`", health)
	}
}

func checkCopy(t *testing.T, root, dockerignore string, args []string, stages map[string]bool) {
	t.Helper()
	var srcs []string
	for _, a := range args[:len(args)-1] {
		if from, ok := strings.CutPrefix(a, "--from="); ok {
			if !stages[from] {
				t.Errorf("COPY --from=%s: no such stage", from)
			}
			return
		}
		if !strings.HasPrefix(a, "--") {
			srcs = append(srcs, a)
		}
	}
	for _, src := range srcs {
		if src == "." {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			t.Errorf("COPY %s: not in the repository", src)
		}
		for _, pat := range strings.Split(dockerignore, "\n") {
			pat = strings.TrimSpace(pat)
			if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
				continue
			}
			if ok, _ := filepath.Match(pat, src); ok {
				t.Errorf("COPY %s: excluded from the build context by .dockerignore pattern %q", src, pat)
			}
		}
	}
}
