package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Kafka.PredictionsTopic != "predictions" || c.ClickHouse.Database != "lookout" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lookout.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestYAMLAndEnvOverrides(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [k1:9092]\ndrift:\n  window: 10m\n  min_samples: 100\n")
	env := []string{
		"LOOKOUT_CLICKHOUSE_ADDR=ch1:9000, ch2:9000",
		"LOOKOUT_DRIFT_MIN_SAMPLES=150",
		"LOOKOUT_EMBED_ENABLED=false",
		"LOOKOUT_INGEST_FLUSH_INTERVAL=250ms",
		"UNRELATED=1",
	}
	c, err := Load(p, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ClickHouse.Addr, ","); got != "ch1:9000,ch2:9000" {
		t.Errorf("clickhouse.addr = %q", got)
	}
	if c.Kafka.Brokers[0] != "k1:9092" || c.Drift.Window != 10*time.Minute {
		t.Errorf("YAML not applied: %+v %v", c.Kafka.Brokers, c.Drift.Window)
	}
	if c.Drift.MinSamples != 150 || c.Embed.Enabled || c.Ingest.FlushInterval != 250*time.Millisecond {
		t.Errorf("env not applied over YAML: %d %v %v", c.Drift.MinSamples, c.Embed.Enabled, c.Ingest.FlushInterval)
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	if _, err := Load(writeFile(t, ""), nil); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFieldIsAnError(t *testing.T) {
	_, err := Load(writeFile(t, "drift:\n  windw: 5m\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "windw") {
		t.Fatalf("err = %v, want a message naming the unknown field", err)
	}
}

func TestValidationListsEveryProblem(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [nohost]\n  sasl:\n    mechanism: kerberos\ndrift:\n  alpha: 2\n  permutations: 5\n")
	_, err := Load(p, nil)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"kafka.brokers", "kafka.sasl.mechanism", "drift.alpha", "drift.permutations"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestBadEnvValueDoesNotEchoIt(t *testing.T) {
	_, err := Load("", []string{"LOOKOUT_DRIFT_PERMUTATIONS=s3cr3t"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "LOOKOUT_DRIFT_PERMUTATIONS") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretsFromFilesAndNeverPrinted(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("", []string{"LOOKOUT_CLICKHOUSE_PASSWORD_FILE=" + pw})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.ClickHouse.Password) != "hunter2" {
		t.Fatalf("password not read from file")
	}
	if s := fmt.Sprintf("%v %+v", c.ClickHouse.Password, c.ClickHouse); strings.Contains(s, "hunter2") {
		t.Fatalf("secret printed: %s", s)
	}
}

func TestEnvNamesCoverNestedFields(t *testing.T) {
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"LOOKOUT_KAFKA_SASL_PASSWORD_FILE", "LOOKOUT_DRIFT_MIN_MMD2", "LOOKOUT_SIMULATE_SHIFT_AFTER"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
}

// The example file in the repository documents every key with its default;
// it must not drift from the code.
func TestExampleFileMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile("../../lookout.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	want, err := Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(body, "\n") != string(want) {
		t.Fatal("lookout.example.yaml is stale: regenerate it with `bin/lookout config` (see its header)")
	}
	if _, err := Load("../../lookout.example.yaml", nil); err != nil {
		t.Fatalf("example file does not load: %v", err)
	}
}
