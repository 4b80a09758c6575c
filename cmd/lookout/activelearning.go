package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lookout-dev/lookout/activelearning"
	"github.com/lookout-dev/lookout/activelearning/labelstudio"
	"github.com/lookout-dev/lookout/activelearning/queue"
	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/store"
)

func init() {
	register(command{name: "al", summary: "active learning: al select | al serve (labelling queue API) | al export",
		run: runAL})
}

const alUsage = `usage: lookout al [-config file.yaml] <subcommand> [flags]

subcommands:
  select   pick the images worth labelling now and store them in al_picks
           -dry-run (print, store nothing)  -json (one JSON pick per line)
  serve    run the labelling queue: HTTP API for annotators, Label Studio
           webhook/push/poll, label publishing, and (activelearning.schedule)
           periodic selection; exactly one instance may run per database
  export   write picked items: -format jsonl|csv|labelstudio
           -selection ID | -since 24h   -o file (default stdout)`

func runAL(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, alUsage)
		return errors.New("al: a subcommand is required")
	}
	fs := flag.NewFlagSet("lookout al "+args[0], flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML configuration file (overrides the one given before the subcommand)")
	var run func() error
	switch args[0] {
	case "select":
		dry := fs.Bool("dry-run", false, "print the picks without storing them")
		asJSON := fs.Bool("json", false, "print picks as JSON lines")
		run = func() error { return alSelect(ctx, cfg, log, *dry, *asJSON) }
	case "serve":
		run = func() error { return alServe(ctx, cfg, log) }
	case "export":
		var o alExportOptions
		fs.StringVar(&o.format, "format", "jsonl", "jsonl, csv or labelstudio (tasks JSON for its import)")
		fs.StringVar(&o.selection, "selection", "", "export this selection id only")
		fs.DurationVar(&o.since, "since", 24*time.Hour, "export picks of this long ago until now (without -selection)")
		fs.StringVar(&o.out, "o", "", "output file (default stdout)")
		run = func() error { return alExport(ctx, cfg, o) }
	default:
		fmt.Fprintln(os.Stderr, alUsage)
		return fmt.Errorf("al: unknown subcommand %q", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath, os.Environ())
		if err != nil {
			return err
		}
		cfg = c
	}
	return run()
}

func alSelect(ctx context.Context, cfg config.Config, log *slog.Logger, dry, asJSON bool) error {
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	sel := activelearning.NewSelector(conn, activelearning.OptionsFromConfig(cfg.Learning), log, nil)
	res, err := sel.Run(ctx, dry)
	if err != nil {
		return err
	}
	if asJSON {
		return activelearning.WriteJSONL(os.Stdout, res.Picks)
	}
	fmt.Printf("selection %s: %d picked of %d candidates (budget %d) in %s%s\n", res.SelectionID, len(res.Picks),
		res.Candidates, res.Budget, res.Duration.Round(time.Millisecond), map[bool]string{true: " (dry run: not stored)"}[dry])
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tEVENT\tSOURCE\tCLASS\tSCORE\tREASONS")
	for _, it := range res.Picks {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.3f\t%s\n", it.Rank, it.EventID, it.Source, it.PredictedClass, it.Score,
			strings.Join(it.Reasons, ", "))
	}
	return tw.Flush()
}

type alExportOptions struct {
	format, selection, out string
	since                  time.Duration
}

func alExport(ctx context.Context, cfg config.Config, o alExportOptions) error {
	conn, err := store.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	var items []queue.Item
	if o.selection != "" {
		items, err = queue.QueryPicks(ctx, conn, "selection_id = ?", o.selection)
	} else {
		items, err = queue.QueryPicks(ctx, conn, "picked_ms >= ?", uint64(time.Now().Add(-o.since).UnixMilli()))
	}
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	switch o.format {
	case "jsonl":
		err = activelearning.WriteJSONL(w, items)
	case "csv":
		err = activelearning.WriteCSV(w, items)
	case "labelstudio":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(labelstudio.Tasks(items, alTaskOptions(cfg)))
	default:
		return fmt.Errorf("al export: unknown -format %q (jsonl, csv, labelstudio)", o.format)
	}
	if err == nil {
		fmt.Fprintf(os.Stderr, "exported %d items\n", len(items))
	}
	return err
}

func alTaskOptions(cfg config.Config) labelstudio.TaskOptions {
	ls := cfg.Learning.LabelStudio
	return labelstudio.TaskOptions{FromName: ls.FromName, ToName: ls.ToName, ImageRoot: cfg.Embed.ImageRoot,
		ImageURLPrefix: ls.ImageURLPrefix}
}

// alReadSecret returns the value from file when one is named, else inline.
func alReadSecret(inline config.Secret, file string) (string, error) {
	if file == "" {
		return string(inline), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// alServe runs the queue owner until ctx ends.
func alServe(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	qs := queue.NewStore(conn)
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano())
	if err := alClaimOwnership(ctx, qs, owner, host, cfg.Learning.OwnerTTL); err != nil {
		return err
	}
	// On every way out, all tasks have stopped, so nothing writes as this
	// owner any more and a successor may start at once.
	defer func() {
		if err := qs.Resign(context.WithoutCancel(ctx), owner, time.Now()); err != nil {
			log.Warn("queue owner resignation not recorded; a successor waits owner_ttl", "err", err)
		}
	}()
	k, err := kafkaconn.New(cfg.Kafka)
	if err != nil {
		return err
	}
	if cfg.Kafka.CreateTopics {
		if err := k.EnsureTopics(ctx, cfg.Kafka.Partitions, cfg.Kafka.LabelsTopic); err != nil {
			return err
		}
	}
	w := k.Writer(cfg.Kafka.LabelsTopic)
	defer w.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	q, err := queue.Open(ctx, qs, queue.KafkaPublisher{W: w}, log.With("component", "queue"), queue.NewMetrics(reg),
		queue.Options{Owner: owner, LeaseTimeout: cfg.Learning.LeaseTimeout, MaxSkips: cfg.Learning.MaxSkips})
	if err != nil {
		return err
	}
	if len(cfg.Auth.Tokens) == 0 {
		log.Warn("no auth.tokens configured: every queue API call will be refused (make one with `lookout token`)")
	}
	authn := auth.New(cfg.Auth.Tokens, log, reg)
	mux := http.NewServeMux()
	q.Routes(mux, authn)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })

	var tasks []func(context.Context) error
	tasks = append(tasks, q.Run, func(ctx context.Context) error {
		return alHeartbeat(ctx, qs, owner, host, cfg.Learning.OwnerTTL, log)
	})
	bridge, err := alLabelStudioBridge(cfg, q, log)
	if err != nil {
		return err
	}
	if bridge != nil {
		mux.Handle("POST /api/al/labelstudio/webhook", bridge.Webhook())
		mux.Handle("POST /api/al/labelstudio/push", authn.Require(auth.RoleOperator, alPushHandler(bridge)))
		if iv := cfg.Learning.LabelStudio.PollInterval; iv > 0 {
			tasks = append(tasks, func(ctx context.Context) error { return alPollLabelStudio(ctx, bridge, iv, log) })
		}
	}
	if cfg.Learning.Schedule {
		sel := activelearning.NewSelector(conn, activelearning.OptionsFromConfig(cfg.Learning),
			log.With("component", "selection"), reg)
		tasks = append(tasks, func(ctx context.Context) error { return sel.Schedule(ctx, cfg.Learning.Interval) })
	}
	srv := &http.Server{Addr: cfg.Learning.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("labelling queue serving", "listen", "http://"+cfg.Learning.Listen, "owner", owner,
		"schedule", cfg.Learning.Schedule, "labelstudio", bridge != nil)
	return alServeUntilDone(ctx, srv, tasks, log)
}

// alClaimOwnership refuses to start while another queue owner heartbeated
// within ttl, then records this one. Two instances starting within the
// same instant can still both pass: deploy one replica (see
// activelearning/queue's package documentation).
func alClaimOwnership(ctx context.Context, qs *queue.Store, owner, host string, ttl time.Duration) error {
	other, otherHost, ok, err := qs.OtherOwner(ctx, owner, time.Now().Add(-ttl))
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("another labelling queue owner (%s on %s) is alive: only one `lookout al serve` may run per database; "+
			"stop it or wait %s after it stopped", other, otherHost, ttl)
	}
	return qs.Heartbeat(ctx, owner, host, time.Now())
}

func alHeartbeat(ctx context.Context, qs *queue.Store, owner, host string, ttl time.Duration, log *slog.Logger) error {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := qs.Heartbeat(ctx, owner, host, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("queue owner heartbeat failed", "err", err)
			}
		}
	}
}

func alLabelStudioBridge(cfg config.Config, q *queue.Queue, log *slog.Logger) (*labelstudio.Bridge, error) {
	ls := cfg.Learning.LabelStudio
	if ls.URL == "" {
		return nil, nil
	}
	token, err := alReadSecret(ls.Token, ls.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("activelearning.labelstudio token: %w", err)
	}
	secret, err := alReadSecret(ls.WebhookSecret, ls.WebhookSecretFile)
	if err != nil {
		return nil, fmt.Errorf("activelearning.labelstudio webhook secret: %w", err)
	}
	return &labelstudio.Bridge{Queue: q, Client: &labelstudio.Client{BaseURL: ls.URL, Token: token},
		Project: ls.ProjectID, Tasks: alTaskOptions(cfg), Secret: secret, LeaseFor: ls.LeaseFor,
		Log: log.With("component", "labelstudio")}, nil
}

func alPushHandler(b *labelstudio.Bridge) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 10000 {
			http.Error(w, "n must be 1…10000", http.StatusBadRequest)
			return
		}
		pushed, err := b.Push(r.Context(), n)
		if err != nil {
			b.Log.Error("push to label studio failed", "err", err)
			http.Error(w, "push failed", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"pushed\":%d}\n", pushed)
	})
}

func alPollLabelStudio(ctx context.Context, b *labelstudio.Bridge, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			n, err := b.Poll(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("label studio poll failed; will retry", "err", err)
			} else if n > 0 {
				log.Info("label studio annotations taken in", "new", n)
			}
		}
	}
}

// alServeUntilDone runs srv and tasks until ctx ends or the server fails, then
// stops the server and waits for every task.
func alServeUntilDone(ctx context.Context, srv *http.Server, tasks []func(context.Context) error, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	var wg sync.WaitGroup
	for _, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := task(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("component stopped", "err", err)
			}
		}()
	}
	var httpErr error
	select {
	case <-ctx.Done():
	case httpErr = <-errc:
	}
	cancel()
	wg.Wait()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdown)
	if httpErr != nil && !errors.Is(httpErr, http.ErrServerClosed) {
		return fmt.Errorf("http %s: %w", srv.Addr, httpErr)
	}
	log.Info("labelling queue stopped")
	return nil
}
