package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lookout-dev/lookout/drift"
	"github.com/lookout-dev/lookout/drift/embed"
	"github.com/lookout-dev/lookout/ingest"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/stream"
)

// service is one running lookout: its consumers, the drift job and the
// operational HTTP endpoint. It owns every goroutine it starts.
type service struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	conn     driver.Conn
	kafka    *kafkaconn.Conn
	model    *embed.Model
	embed    *embed.Stage
	drift    *drift.Job
	ready    atomic.Bool
	closers  []func() error
	onReport func([]drift.Report)
}

// newService connects to ClickHouse and Kafka, applies migrations and loads the
// embedding model. Nothing runs until run is called.
func newService(ctx context.Context, cfg config.Config, log *slog.Logger) (*service, error) {
	s := &service{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	conn, err := store.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	s.closers = append(s.closers, conn.Close)
	if _, err := store.Migrate(ctx, conn, cfg.ClickHouse.Database, log); err != nil {
		s.close()
		return nil, err
	}
	if s.kafka, err = kafkaconn.New(cfg.Kafka); err != nil {
		s.close()
		return nil, err
	}
	if cfg.Kafka.CreateTopics {
		k := cfg.Kafka
		if err := s.kafka.EnsureTopics(ctx, k.Partitions, k.PredictionsTopic, k.DLQTopic, k.LabelsTopic, k.LeaderTopic); err != nil {
			s.close()
			return nil, err
		}
	}
	if cfg.Embed.Enabled {
		s.model, err = embed.Open(embed.ModelOptions(cfg.Embed))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("embedding model: %w", err)
		}
		s.closers = append(s.closers, s.model.Close)
		s.embed = embed.NewStage(s.model, embed.NewFetchers(cfg.Embed), conn, embed.Options(cfg.Embed),
			embed.NewStageMetrics(s.reg))
		if err := s.embed.Check(); err != nil {
			s.close()
			return nil, fmt.Errorf("embedding model %s: %w", cfg.Embed.ModelPath, err)
		}
		log.Info("embedding model loaded", "embedder", s.model.ID(), "dim", s.model.Dim())
	}
	if cfg.Drift.Enabled {
		s.drift = drift.NewJob(conn, cfg.Drift, drift.NewMetrics(s.reg), log.With("component", "drift"))
	}
	return s, nil
}

func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Warn("close", "err", err)
		}
	}
}

// run starts every component and blocks until ctx is cancelled and all of
// them have drained.
func (s *service) run(ctx context.Context) error {
	defer s.close()
	srv := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()

	var wg sync.WaitGroup
	for _, task := range s.tasks() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := task(ctx); err != nil {
				s.log.Error("component stopped", "err", err)
			}
		}()
	}
	s.ready.Store(true)
	s.log.Info("lookout running", "metrics", "http://"+s.cfg.HTTP.Listen+"/metrics", "brokers", s.cfg.Kafka.Brokers)

	var httpErr error
	select {
	case <-ctx.Done():
	case httpErr = <-errc:
		s.log.Error("http server stopped", "err", httpErr)
	}
	s.ready.Store(false)
	wg.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if httpErr != nil && !errors.Is(httpErr, http.ErrServerClosed) {
		return fmt.Errorf("http %s: %w", s.cfg.HTTP.Listen, httpErr)
	}
	s.log.Info("lookout stopped")
	return nil
}

func (s *service) tasks() []func(context.Context) error {
	k := s.cfg.Kafka
	metrics := stream.NewMetrics(s.reg)
	ingestMetrics := ingest.NewMetrics(s.reg)
	dlq := s.kafka.Writer(k.DLQTopic)
	s.closers = append(s.closers, dlq.Close)
	opts := stream.Options{
		BatchSize: s.cfg.Ingest.BatchSize, FlushInterval: s.cfg.Ingest.FlushInterval,
		BatchesPerWrite: s.cfg.Ingest.BatchesPerInsert, DeadLetter: dlq, Metrics: metrics, Log: s.log,
	}
	dec := &event.Decoder{Limits: s.cfg.Ingest.Limits}
	tasks := []func(context.Context) error{
		consume(s, k.PredictionsTopic, k.GroupID, ingest.Predictions(s.conn, dec, ingestMetrics), opts),
		consume(s, k.LabelsTopic, k.GroupID+"-labels", ingest.Labels(s.conn, dec, ingestMetrics), opts),
	}
	if s.embed != nil {
		eopts := opts
		eopts.BatchSize, eopts.FlushInterval, eopts.DeadLetter = s.cfg.Embed.BatchSize, s.cfg.Embed.FlushInterval, nil
		tasks = append(tasks, consume(s, k.PredictionsTopic, k.GroupID+"-embed", s.embed.Stream(), eopts))
	}
	if s.drift != nil {
		// One instance of a deployment runs the drift job: the elected one.
		tasks = append(tasks, func(ctx context.Context) error {
			return s.kafka.Lead(ctx, "drift", s.log, func(ctx context.Context) {
				if err := s.drift.Run(ctx, s.onReport); err != nil {
					s.log.Error("drift job stopped", "err", err)
				}
			})
		})
	}
	return tasks
}

// consume runs one stage on its own reader, closing the reader when done.
func consume[T any](s *service, topic, group string, stage stream.Stage[T], opts stream.Options) func(context.Context) error {
	return func(ctx context.Context) error {
		r, err := s.kafka.Reader(topic, group)
		if err != nil {
			return err
		}
		defer func() {
			if err := r.Close(); err != nil {
				s.log.Warn("close reader", "topic", topic, "err", err)
			}
		}()
		return stream.Run(ctx, r, stage, opts)
	}
}

func (s *service) httpServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	// Profiles on the operational port, as Prometheus itself does: the port is
	// loopback by default and carries no request data.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !s.ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		if err := s.conn.Ping(ctx); err != nil {
			http.Error(w, "clickhouse unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return &http.Server{Addr: s.cfg.HTTP.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
