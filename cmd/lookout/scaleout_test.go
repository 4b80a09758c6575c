package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// lookoutBinary builds the real binary once per test run: these tests kill
// processes, which an in-process service cannot simulate.
func lookoutBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lookout-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lookout")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type ingestProc struct {
	cmd  *exec.Cmd
	http string
}

func startIngest(t *testing.T, bin string, env []string) *ingestProc {
	p := &ingestProc{http: freeAddr(t)}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(append(os.Environ(), env...), "LOOKOUT_HTTP_LISTEN="+p.http)
	p.cmd.Stderr = testWriter{t}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

var storedRE = regexp.MustCompile(`lookout_consumer_messages_total\{outcome="stored",stage="predictions"\} (\d+)`)

// stored reads how many predictions this process stored from its /metrics.
func (p *ingestProc) stored() int {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := storedRE.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if os.Getenv("LOOKOUT_TEST_LOG") != "" {
		w.t.Log(string(b))
	}
	return len(b), nil
}

// TestTwoInstancesShareAndSurviveKill9 runs two `lookout serve` processes in
// one consumer group, checks they split the partitions, kills one with
// SIGKILL mid-stream and checks the survivor takes over so that every event
// is stored, and none twice as readers see the table.
func TestTwoInstancesShareAndSurviveKill9(t *testing.T) {
	bin := lookoutBinary(t)
	broker := testenv.Kafka(t, "predictions", "predictions-dlq", "labels")
	_, ch := testenv.ClickHouse(t)
	conn := openConn(t, ch)
	env := []string{
		"LOOKOUT_KAFKA_BROKERS=" + broker, "LOOKOUT_KAFKA_CREATE_TOPICS=false", "LOOKOUT_KAFKA_GROUP_ID=scale",
		"LOOKOUT_CLICKHOUSE_ADDR=" + ch.Addr[0], "LOOKOUT_CLICKHOUSE_DATABASE=" + ch.Database,
		"LOOKOUT_EMBED_ENABLED=false", "LOOKOUT_DRIFT_ENABLED=false", "LOOKOUT_LOG_LEVEL=warn",
		"LOOKOUT_INGEST_BATCH_SIZE=200", "LOOKOUT_INGEST_FLUSH_INTERVAL=100ms",
	}
	a, b := startIngest(t, bin, env), startIngest(t, bin, env)

	const chunks, perChunk = 24, 250
	total, next := 0, 0
	produce := func() {
		var lines []string
		for j := range perChunk {
			id := fmt.Sprintf("k-%03d-%04d", next, j)
			lines = append(lines, id+"\t"+fmt.Sprintf(`{"event_id":%q,"ts":%q,"model":"m","model_version":"v1","source":"cam-%d",`+
				`"task":"classification","image_uri":"file:///x.jpg","probs":{"a":0.7,"b":0.3}}`,
				id, time.Now().UTC().Format(time.RFC3339Nano), j%3))
		}
		testenv.KcatProduce(t, broker, "predictions", lines)
		total += perChunk
		next++
	}
	for i := range chunks {
		produce()
		if i == chunks/2 {
			// A member whose partitions arrive after the backlog is consumed
			// only gets work from new events: keep the stream flowing.
			testenv.Eventually(t, 60*time.Second, "both instances to store part of the stream", func() bool {
				if a.stored() > 0 && b.stored() > 0 {
					return true
				}
				produce()
				return false
			})
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = a.cmd.Wait()
		}
		time.Sleep(150 * time.Millisecond)
	}
	testenv.Eventually(t, 90*time.Second, "the survivor to store every event", func() bool {
		return testenv.Count(t, conn, "SELECT uniqExact(event_id) FROM predictions") == uint64(total)
	})
	if n := testenv.Count(t, conn, "SELECT count() FROM predictions FINAL"); n != uint64(total) {
		t.Fatalf("rows as readers see them = %d, want %d", n, total)
	}
	t.Logf("instance b stored %d of %d (a was killed after sharing the first half)", b.stored(), total)
}

func openConn(t *testing.T, cfg config.ClickHouse) driver.Conn {
	conn, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
