package testenv

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// KcatProduce sends key<TAB>value lines to topic with kcat, a Kafka client
// independent of lookout's own, so tests do not only check kafka-go against
// itself.
func KcatProduce(t testing.TB, broker, topic string, lines []string) {
	t.Helper()
	cmd := exec.Command(kcat(t), "-P", "-b", broker, "-t", topic, "-K", "\t")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
}

// KcatConsume reads the whole of topic with kcat, one line per message in
// kcat's -f format (e.g. "%k|%h|%s\n" for key, headers and value).
func KcatConsume(t testing.TB, broker, topic, format string) string {
	t.Helper()
	cmd := exec.Command(kcat(t), "-C", "-b", broker, "-t", topic, "-e", "-q", "-f", format)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, out.String())
	}
	return out.String()
}

func kcat(t testing.TB) string {
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: run `make setup`")
	}
	return p
}
