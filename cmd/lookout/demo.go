package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/drift"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/simulate"
	"github.com/lookout-dev/lookout/internal/store"
)

type demoOptions struct {
	exitAfterVerdict bool
	timeout          time.Duration
	logFile          string
}

func (o *demoOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.exitAfterVerdict, "exit-after-verdict", false, "exit once drift is flagged on the shifted source only (exit 1 on timeout)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with -exit-after-verdict: give up after this long")
	fs.StringVar(&o.logFile, "log", ".lookout/demo/service.log", "where the service's own log goes")
}

// run runs the development broker, the whole service and the traffic
// simulator in one process, and prints each drift run as a small table. The
// demo gets its own database (<database>_demo), recreated at every start, so
// its reference windows always come from this run.
func (o *demoOptions) run(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	stopAfterVerdict, timeout, logFile := &o.exitAfterVerdict, &o.timeout, &o.logFile
	cfg.ClickHouse.Database += "_demo"
	cfg.DevKafka.DataDir = "" // in-memory: every demo starts from empty topics
	out := os.Stdout
	svcLog, closeLog, err := fileLogger(*logFile, cfg.Log)
	if err != nil {
		return err
	}
	defer closeLog()

	if err := resetDemoDatabase(ctx, cfg, log); err != nil {
		return err
	}
	broker, err := startDevKafka(cfg)
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.Kafka.Brokers = broker.Addrs()
	fmt.Fprintf(out, "lookout demo: broker %s, ClickHouse database %s, service log %s\n",
		strings.Join(broker.Addrs(), ","), cfg.ClickHouse.Database, *logFile)

	fmt.Fprintf(out, "rendering the synthetic camera pictures under %s ...\n", cfg.Simulate.ImageDir)
	gen, err := simulate.NewGenerator(cfg.Simulate)
	if err != nil {
		return err
	}
	svc, err := newService(ctx, cfg, svcLog)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *stopAfterVerdict {
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeout(ctx, *timeout)
		defer tcancel()
	}
	printer := &demoPrinter{out: out, gen: gen, cfg: cfg, start: time.Now()}
	svc.onReport = func(rs []drift.Report) {
		if printer.print(rs) && *stopAfterVerdict {
			cancel()
		}
	}
	return runDemoParts(ctx, svc, gen, cfg, out, printer)
}

func runDemoParts(ctx context.Context, svc *service, gen *simulate.Generator, cfg config.Config, out io.Writer, p *demoPrinter) error {
	sc := gen.Config()
	fmt.Fprintf(out, "simulating %v at %.0f events/s; %s shifts (darker, blurred) after %s.\n",
		sc.Sources, sc.Rate, sc.ShiftSource, sc.ShiftAfter)
	fmt.Fprintf(out, "reference window: the first %s of each source; current window: the last %s; drift runs every %s. Ctrl-C stops.\n\n",
		cfg.Drift.ReferenceDuration, cfg.Drift.Window, cfg.Drift.Interval)
	conn, err := newPublisherFor(cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := gen.Run(ctx, conn, func(f string, a ...any) { fmt.Fprintf(out, "simulator: "+f+"\n", a...) }); err != nil {
			fmt.Fprintf(out, "simulator stopped: %v\n", err)
		}
	}()
	err = svc.run(ctx)
	wg.Wait()
	if err != nil {
		return err
	}
	return p.exitError()
}

func resetDemoDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	conn, err := store.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.ClickHouse.Database); err != nil {
		return fmt.Errorf("reset demo database: %w", err)
	}
	log.Debug("demo database reset", "database", cfg.ClickHouse.Database)
	return nil
}

func fileLogger(path string, c config.Log) (*slog.Logger, func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("demo log dir: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("demo log: %w", err)
	}
	return newLogger(c, f), func() { f.Close() }, nil
}

// demoPrinter renders drift runs for a person watching the demo.
type demoPrinter struct {
	out     io.Writer
	gen     *simulate.Generator
	cfg     config.Config
	start   time.Time
	mu      sync.Mutex
	verdict bool
}

// print writes one run and reports whether the demo's point has been made:
// the shifted source flagged, every other source checked and not flagged.
func (p *demoPrinter) print(rs []drift.Report) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	bySource := make(map[string][]drift.Report)
	for _, r := range rs {
		bySource[r.Source] = append(bySource[r.Source], r)
	}
	sources := make([]string, 0, len(bySource))
	for s := range bySource {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	fmt.Fprintf(p.out, "drift run at +%s\n", time.Since(p.start).Round(time.Second))
	shiftFlagged, othersClean := false, true
	for _, s := range sources {
		line, flagged, checked := describe(bySource[s])
		shifted := p.gen.Shifted(s, time.Now())
		mark := ""
		if shifted {
			mark = " (shifted)"
		}
		fmt.Fprintf(p.out, "  %-8s %-12s %s\n", s+mark, line, detailLine(bySource[s]))
		switch {
		case shifted && flagged:
			shiftFlagged = true
		case !shifted && (flagged || !checked):
			othersClean = false
		}
	}
	if shiftFlagged && othersClean && !p.verdict {
		p.verdict = true
		p.banner()
		return true
	}
	return false
}

func describe(rs []drift.Report) (status string, flagged, checked bool) {
	checked = true
	for _, r := range rs {
		flagged = flagged || r.Flagged()
		checked = checked && r.Status != drift.StatusInsufficient
	}
	switch {
	case flagged:
		return "DRIFT", true, checked
	case !checked:
		return "warming up", false, false
	}
	return "ok", false, true
}

// detailLine shows the two headline tests' numbers and, when drift is
// flagged, every test that flagged it.
func detailLine(rs []drift.Report) string {
	var parts, flagged []string
	for _, r := range rs {
		if r.Flagged() {
			flagged = append(flagged, r.Test)
		}
		if r.Status == drift.StatusInsufficient {
			continue
		}
		switch r.Test {
		case drift.TestClassChi2:
			parts = append(parts, fmt.Sprintf("classes p=%.2g JS=%.3f", r.PValue, r.Effect))
		case drift.TestEmbeddingMMD:
			parts = append(parts, fmt.Sprintf("embeddings p=%.2g MMD²=%.4f (n=%d/%d)", r.PValue, r.Effect, r.NRef, r.NCur))
		}
	}
	if len(flagged) > 0 {
		parts = append(parts, fmt.Sprintf("flagged by %d/%d tests: %s", len(flagged), len(rs), strings.Join(flagged, ", ")))
	}
	return strings.Join(parts, "   ")
}

func (p *demoPrinter) banner() {
	ch := p.cfg.ClickHouse
	port := "19000"
	if len(ch.Addr) > 0 {
		if i := strings.LastIndex(ch.Addr[0], ":"); i >= 0 {
			port = ch.Addr[0][i+1:]
		}
	}
	fmt.Fprintf(p.out, `
==> Drift flagged on %s, the shifted source, and on no other source.
    Where to look:
      metrics:     http://%s/metrics   (lookout_drift_flagged, lookout_drift_p_value, lookout_consumer_*)
      reports:     clickhouse-client --port %s --query "SELECT run_at, source, test, status, p_value, effect, detail FROM %s.drift_reports WHERE flagged ORDER BY run_at DESC LIMIT 10"
      why:         clickhouse-client --port %s --query "SELECT test, kind, item, round(value, 3), detail FROM %s.drift_explanations WHERE source = '%s' ORDER BY run_at DESC, test, rank LIMIT 15"
      tables:      %s.predictions, %s.embeddings, %s.labels, %s.drift_reports
    The demo keeps running; Ctrl-C stops it cleanly.

`, p.gen.Config().ShiftSource, p.cfg.HTTP.Listen, port, ch.Database, port, ch.Database, p.gen.Config().ShiftSource,
		ch.Database, ch.Database, ch.Database, ch.Database)
}

func (p *demoPrinter) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.verdict {
		return fmt.Errorf("demo ended before drift was flagged on the shifted source alone")
	}
	return nil
}
