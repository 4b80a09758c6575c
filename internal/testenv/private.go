package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/config"
)

// PrivateClickHouse is a ClickHouse server owned by one test, which may stop
// and start it (outage tests) without disturbing the shared server.
type PrivateClickHouse struct {
	t        testing.TB
	dir      string
	tcp, web int
	cmd      *exec.Cmd
}

// StartPrivateClickHouse starts a server on free loopback ports with its data
// in a temporary directory; it is stopped when the test ends.
func StartPrivateClickHouse(t testing.TB) *PrivateClickHouse {
	t.Helper()
	p := &PrivateClickHouse{t: t, dir: t.TempDir(), tcp: freePort(t), web: freePort(t)}
	if err := p.writeConfig(); err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Config returns connection settings for the server with a fresh database.
func (p *PrivateClickHouse) Config() config.ClickHouse {
	cfg := ClickHouseConfig(p.t)
	cfg.Addr = []string{"127.0.0.1:" + strconv.Itoa(p.tcp)}
	return cfg
}

// Start starts the server and waits until it answers.
func (p *PrivateClickHouse) Start() {
	p.t.Helper()
	p.cmd = exec.Command("/usr/sbin/clickhouse-server", "--config-file="+filepath.Join(p.dir, "config.xml"))
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start clickhouse-server: %v (run `make setup`)", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/ping", p.web)
	Eventually(p.t, 30*time.Second, "private ClickHouse to answer", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// Stop stops the server (SIGTERM, then waits), as an outage would.
func (p *PrivateClickHouse) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

func (p *PrivateClickHouse) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "log"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>%[2]d</http_port>
  <tcp_port>%[3]d</tcp_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
</yandex>`, p.dir, p.web, p.tcp)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>`
	if err := os.WriteFile(filepath.Join(p.dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.dir, "users.xml"), []byte(users), 0o644)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
