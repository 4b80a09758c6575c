package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/store"
)

type benchOptions struct {
	events     int
	partitions int
	rounds     int
	brokerCPU  cpuMeter
}

func init() {
	var o benchOptions
	register(command{
		name:    "bench-ingest",
		summary: "measure Kafka → ClickHouse ingest against the kcat | clickhouse-client pipe",
		flags:   o.register,
		run:     o.run,
	})
}

func (o *benchOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&o.events, "events", 1_000_000, "classification events (12-class probs) to ingest")
	fs.IntVar(&o.partitions, "partitions", 4, "partitions of the benchmark topic")
	fs.IntVar(&o.rounds, "rounds", 3, "runs of each contender, alternating (the machine's load changes between runs)")
}

// benchResult is one contender's run.
type benchResult struct {
	name      string
	wall      time.Duration
	cpu       time.Duration
	serverCPU time.Duration // ClickHouse server's CPU during the run; <0 if unknown
	brokerCPU time.Duration // the development broker's CPU during the run; <0 if unknown
	maxRSS    int64         // KiB
	sustained float64       // events/s between 10% and 90% of the backlog stored; 0 if not measured
	events    int
	comment   string
}

func (r benchResult) row() string {
	per10k := func(d time.Duration) string {
		if d < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.3f", d.Seconds()*10000/float64(r.events))
	}
	rate := float64(r.events) / r.wall.Seconds()
	return fmt.Sprintf("| %s | %d | %.2f | %.0f | %s | %s | %s | %.0f | %s |", r.name, r.events, r.wall.Seconds(),
		rate, per10k(r.cpu), per10k(r.serverCPU), per10k(r.brokerCPU), float64(r.maxRSS)/1024, r.comment)
}

// serverCPU returns the CPU time used so far by the local ClickHouse server,
// or -1 when it is not a process on this machine (the column then says n/a).
// Counting it matters: both contenders hand most of the work to the server.
func serverCPU() time.Duration {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "clickhouse-serv") {
			return procCPU(d.Name())
		}
	}
	return -1
}

// procCPU returns the CPU time process pid has used so far, -1 if unknown.
func procCPU(pid string) time.Duration {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the parenthesised command: utime and stime are the 12th
	// and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var ut, st int64
	if len(f) < 13 {
		return -1
	}
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuMeter reads a process's CPU time; during charges what it used
// during f to f's result.
type cpuMeter func() time.Duration

func (m cpuMeter) during(f func() (benchResult, error), charge func(*benchResult, time.Duration)) (benchResult, error) {
	before := m()
	r, err := f()
	after := m()
	used := time.Duration(-1)
	if before >= 0 && after >= 0 {
		used = after - before
	}
	charge(&r, used)
	return r, err
}

// run starts a development broker in a child process, fills a topic, then
// drains it into ClickHouse twice: with the plain C/C++ pipe and with
// `lookout serve` (ingest only), both as child processes so their CPU time
// and peak RSS are measured the same way (wait4 rusage).
func (o *benchOptions) run(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	broker, brokerPID, stopBroker, err := startBrokerProcess(ctx, self, o.partitions)
	if err != nil {
		return err
	}
	o.brokerCPU = func() time.Duration { return procCPU(brokerPID) }
	defer stopBroker()
	cfg.Kafka.Brokers = []string{broker}
	cfg.ClickHouse.Database = "lookout_bench_ingest"
	conn, err := benchDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Printf("producing %d events to %s (%d partitions) ...\n", o.events, broker, o.partitions)
	fmt.Println("baseline: kcat -C -b BROKER -t TOPIC -e | clickhouse-client --input_format_skip_unknown_fields=1 --query 'INSERT INTO pipe FORMAT JSONEachRow'")
	fmt.Println("lookout:  lookout serve with embedding and drift off")
	if err := produceBenchEvents(ctx, cfg, o.events); err != nil {
		return err
	}
	fmt.Println("\n| round | path | events | wall s | events/s | CPU s per 10k events | ClickHouse server CPU s per 10k | broker CPU s per 10k | peak RSS MiB | note |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var wallRatios, sustainedRatios []float64
	for round := 1; round <= max(o.rounds, 1); round++ {
		pipe, ours, err := o.runRound(ctx, self, cfg, conn)
		if err != nil {
			return err
		}
		fmt.Printf("| %d %s\n| %d %s\n", round, pipe.row(), round, ours.row())
		pipeRate := float64(pipe.events) / pipe.wall.Seconds()
		wallRatios = append(wallRatios, pipe.wall.Seconds()/ours.wall.Seconds())
		sustainedRatios = append(sustainedRatios, ours.sustained/pipeRate)
	}
	// The pipe's rate is its wall rate either way: clickhouse-client sends
	// the whole backlog as one block, so nothing is stored before the end.
	fmt.Printf("\nlookout / pipe, whole drain (start-up and last partial batch included): %.2f; median %.2f\n",
		wallRatios, median(wallRatios))
	fmt.Printf("lookout sustained rate / pipe rate: %.2f; median %.2f\n", sustainedRatios, median(sustainedRatios))
	return nil
}

// runRound drains the topic once with each contender, from empty tables.
func (o *benchOptions) runRound(ctx context.Context, self string, cfg config.Config, conn driver.Conn) (pipe, ours benchResult, err error) {
	for _, table := range []string{"pipe", "predictions"} {
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+table); err != nil {
			return pipe, ours, fmt.Errorf("empty %s: %w", table, err)
		}
	}
	if pipe, err = o.measured(func() (benchResult, error) { return o.runPipe(ctx, cfg, conn) }); err != nil {
		return pipe, ours, err
	}
	ours, err = o.measured(func() (benchResult, error) { return o.runLookout(ctx, self, cfg, conn) })
	return pipe, ours, err
}

// measured runs f and charges the ClickHouse server's and the broker's CPU
// over that time to its result: both contenders hand work to both.
func (o *benchOptions) measured(f func() (benchResult, error)) (benchResult, error) {
	return cpuMeter(serverCPU).during(func() (benchResult, error) {
		return o.brokerCPU.during(f, func(r *benchResult, d time.Duration) { r.brokerCPU = d })
	}, func(r *benchResult, d time.Duration) { r.serverCPU = d })
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func startBrokerProcess(ctx context.Context, self string, partitions int) (addr, pid string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, err
	}
	addr = l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, self, "devkafka")
	cmd.Env = append(os.Environ(), "LOOKOUT_DEVKAFKA_LISTEN="+addr, "LOOKOUT_DEVKAFKA_DATA_DIR=",
		fmt.Sprintf("LOOKOUT_DEVKAFKA_PARTITIONS=%d", partitions), "LOOKOUT_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("start devkafka: %w", err)
	}
	stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, strconv.Itoa(cmd.Process.Pid), stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", "", nil, errors.New("devkafka did not start")
}

func benchDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) (driver.Conn, error) {
	if err := resetDemoDatabase(ctx, cfg, log); err != nil {
		return nil, err
	}
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return nil, err
	}
	// The pipe's table: the scalar fields only. JSONEachRow on ClickHouse 18.16
	// cannot map the probs object onto arrays, so the pipe skips it and does
	// strictly less work than lookout, which also validates and stores probs.
	err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pipe (event_id String, ts String, model String,
		model_version String, source String, task String, image_uri String, predicted_class String,
		latency_ms Float32, arm String) ENGINE = MergeTree ORDER BY (model, source, event_id)`)
	return conn, err
}

func produceBenchEvents(ctx context.Context, cfg config.Config, n int) error {
	kc, err := kafkaconn.New(cfg.Kafka)
	if err != nil {
		return err
	}
	w := kc.Writer(cfg.Kafka.PredictionsTopic)
	w.BatchSize = 5000
	w.Async = false
	defer w.Close()
	base := time.Now().Add(-time.Hour).UTC()
	const chunk = 20000
	msgs := make([]kafka.Message, 0, chunk)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("bench-%09d", i)
		msgs = append(msgs, kafka.Message{Key: []byte(id), Value: benchEvent(id, i, base)})
		if len(msgs) == chunk || i == n-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return fmt.Errorf("produce benchmark events: %w", err)
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

var benchClasses = []string{"good", "scratch", "dent", "crack", "hole", "stain", "burr", "rust", "chip", "warp", "missing_part", "discoloration"}

func benchEvent(id string, i int, base time.Time) []byte {
	var b strings.Builder
	top := i % len(benchClasses)
	fmt.Fprintf(&b, `{"schema_version":1,"event_id":%q,"ts":%q,"model":"defect-classifier","model_version":"v1",`+
		`"source":"cam-%d","task":"classification","image_uri":"file:///data/cam/%s.jpg","predicted_class":%q,"probs":{`,
		id, base.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00"), i%3, id, benchClasses[top])
	for c, name := range benchClasses {
		p := 0.01
		if c == top {
			p = 0.89
		}
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%g", name, p)
	}
	fmt.Fprintf(&b, `},"latency_ms":%d.5,"arm":"stable"}`, 5+i%20)
	return []byte(b.String())
}

func (o *benchOptions) runPipe(ctx context.Context, cfg config.Config, conn driver.Conn) (benchResult, error) {
	port := "19000"
	if _, p, err := net.SplitHostPort(cfg.ClickHouse.Addr[0]); err == nil {
		port = p
	}
	script := fmt.Sprintf("kcat -C -b %s -t %s -e -q -o beginning | clickhouse-client --port %s "+
		"--input_format_skip_unknown_fields=1 --query 'INSERT INTO %s.pipe FORMAT JSONEachRow'",
		cfg.Kafka.Brokers[0], cfg.Kafka.PredictionsTopic, port, cfg.ClickHouse.Database)
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return benchResult{}, fmt.Errorf("pipe: %w", err)
	}
	r := rusage("kcat → clickhouse-client pipe", cmd.ProcessState, time.Since(start), o.events)
	r.comment = "scalar fields only, no validation, no probs"
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM pipe").Scan(&n); err != nil || int(n) != o.events {
		return r, fmt.Errorf("pipe stored %d of %d rows (%v)", n, o.events, err)
	}
	return r, nil
}

func (o *benchOptions) runLookout(ctx context.Context, self string, cfg config.Config, conn driver.Conn) (benchResult, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchResult{}, err
	}
	httpAddr := l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, self, "serve")
	cmd.Env = append(os.Environ(), "LOOKOUT_KAFKA_BROKERS="+cfg.Kafka.Brokers[0],
		"LOOKOUT_CLICKHOUSE_DATABASE="+cfg.ClickHouse.Database, "LOOKOUT_HTTP_LISTEN="+httpAddr,
		"LOOKOUT_EMBED_ENABLED=false", "LOOKOUT_DRIFT_ENABLED=false", "LOOKOUT_LOG_LEVEL=warn",
		fmt.Sprintf("LOOKOUT_KAFKA_GROUP_ID=bench-%d", time.Now().UnixNano()))
	cmd.Stderr = os.Stderr
	fmt.Fprintln(os.Stderr, "lookout serve (ingest only) running; CPU profile: http://"+httpAddr+"/debug/pprof/profile")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return benchResult{}, err
	}
	var first, at10, at90 time.Duration
	var firstRows, rows10, rows90 uint64
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM predictions").Scan(&n); err != nil {
			_ = cmd.Process.Kill()
			return benchResult{}, err
		}
		since := time.Since(start)
		if n > 0 && first == 0 {
			first, firstRows = since, n
		}
		if n >= uint64(o.events)/10 && at10 == 0 {
			at10, rows10 = since, n
		}
		if n >= uint64(o.events)*9/10 && at90 == 0 {
			at90, rows90 = since, n
		}
		if int(n) >= o.events {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(start)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	r := rusage("lookout serve (ingest)", cmd.ProcessState, wall, o.events)
	// Start-up (connect, migrations check, consumer group join, first batch)
	// and the last partial batch, which waits for ingest.flush_interval, are
	// part of draining a finite backlog but not of the sustained rate.
	if at90 > at10 {
		r.sustained = float64(rows90-rows10) / (at90 - at10).Seconds()
	}
	r.comment = fmt.Sprintf("validated, 12-class probs + derived scores stored; first %d rows after %.2f s; %.0f events/s from 10%% to 90%% of the backlog",
		firstRows, first.Seconds(), r.sustained)
	return r, nil
}

func rusage(name string, ps *os.ProcessState, wall time.Duration, events int) benchResult {
	r := benchResult{name: name, wall: wall, events: events, cpu: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	return r
}
