package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lookout-dev/lookout/canary/rollout"
	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/canary/web"
	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/store"
)

func init() {
	register(command{name: "router", summary: "run the canary router, rollout controller, admin API and web page",
		run: runRouter})
}

// runRouter serves inference traffic on canary.listen and the admin API, the
// web page and /metrics on canary.admin_listen until ctx is cancelled, then
// drains in-flight requests and queued events.
func runRouter(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	log = log.With("component", "router")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	kc, err := kafkaconn.New(cfg.Kafka)
	if err != nil {
		return err
	}
	if cfg.Kafka.CreateTopics {
		if err := kc.EnsureTopics(ctx, cfg.Kafka.Partitions, cfg.Kafka.PredictionsTopic); err != nil {
			return err
		}
	}
	writer := kc.Writer(cfg.Kafka.PredictionsTopic)
	defer writer.Close()
	// kafka-go allocates (and zeroes) room for BatchSize messages per
	// partition batch. The publisher hands it up to 1,000 events per 20 ms,
	// spread over the partitions, so 1,000-message batches were mostly empty
	// space: ≈ 2% of the router's CPU at 15,000 req/s.
	writer.BatchSize = 250

	rt, err := router.New(router.Options{Config: cfg.Canary, Registry: reg, Log: log})
	if err != nil {
		return err
	}
	pub := router.NewKafkaPublisher(writer, cfg.Canary.PublishQueue, rt.EventsCounter(), log)
	rt.SetPublisher(pub)
	db := cfg.ClickHouse.Database
	ctl, err := rollout.New(ctx, rollout.Options{Config: cfg.Canary, Router: rt,
		Audit: rollout.NewClickHouseAudit(conn, db), Accuracy: rollout.NewClickHouseAccuracy(conn, db), Log: log})
	if err != nil {
		return fmt.Errorf("rollout controller: %w", err)
	}
	reg.MustRegister(ctl.Collector())
	if len(cfg.Auth.Tokens) == 0 {
		log.Warn("auth.tokens is empty: the admin API and web page refuse everyone (make one with `lookout token`)")
	}
	authn := auth.New(cfg.Auth.Tokens, log, reg)
	admin := http.NewServeMux()
	rollout.API{C: ctl, Auth: authn}.Register(admin)
	admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	// Profiles help explain proxy overhead in production; admins only.
	admin.Handle("/debug/pprof/", authn.Require(auth.RoleAdmin, http.HandlerFunc(pprof.Index)))
	admin.Handle("/debug/pprof/profile", authn.Require(auth.RoleAdmin, http.HandlerFunc(pprof.Profile)))
	admin.Handle("/", web.New(ctl, authn, log))
	return serveRouter(ctx, cfg.Canary, log, rt, pub, ctl, rollout.NewClickHouseAlarms(conn, db), admin)
}

func serveRouter(ctx context.Context, cfg config.Canary, log *slog.Logger, rt *router.Router,
	pub *router.KafkaPublisher, ctl *rollout.Controller, alarms rollout.AlarmSource, admin http.Handler) error {
	proxyLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("listen %s: %w", cfg.AdminListen, err)
	}
	adm := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}

	// Events outlive the proxy so requests in flight at shutdown still publish.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	go pub.Run(pubCtx)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	rt.Start(runCtx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ctl.Run(runCtx, alarms) }()
	errc := make(chan error, 2)
	// The proxy listener runs on fasthttp (router.Serve); admin stays on net/http.
	go func() { errc <- rt.Serve(proxyLn) }()
	go func() { errc <- adm.Serve(adminLn) }()
	log.Info("router running", "proxy", "http://"+cfg.Listen, "admin", "http://"+cfg.AdminListen,
		"route", fmt.Sprintf("%+v", rt.Route()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Waits for requests in flight; their events still reach the publisher.
	if err := rt.Shutdown(shutdown); err != nil {
		log.Warn("proxy shutdown", "err", err)
	}
	_ = adm.Shutdown(shutdown)
	stopRun()
	wg.Wait()
	rt.Wait()
	stopPub()
	<-pub.Done()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("router http: %w", serveErr)
	}
	log.Info("router stopped")
	return nil
}
