package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/devkafka"
	"github.com/lookout-dev/lookout/internal/store"
)

func runServe(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	s, err := newService(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

func runMigrate(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	conn, err := store.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := store.Migrate(ctx, conn, cfg.ClickHouse.Database, log)
	if err != nil {
		return err
	}
	log.Info("schema is current", "database", cfg.ClickHouse.Database, "applied_now", n, "version", store.Version())
	return nil
}

func runDevKafka(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	b, err := startDevKafka(cfg)
	if err != nil {
		return err
	}
	log.Info("devkafka running; Ctrl-C stops it", "addrs", b.Addrs(), "data_dir", cfg.DevKafka.DataDir,
		"partitions", cfg.DevKafka.Partitions)
	<-ctx.Done()
	b.Close()
	log.Info("devkafka stopped")
	return nil
}

func startDevKafka(cfg config.Config) (*devkafka.Broker, error) {
	k := cfg.Kafka
	return devkafka.Start(devkafka.Options{
		Listen:     cfg.DevKafka.Listen,
		DataDir:    cfg.DevKafka.DataDir,
		Partitions: cfg.DevKafka.Partitions,
		Topics:     []string{k.PredictionsTopic, k.DLQTopic, k.LabelsTopic, k.LeaderTopic},
	})
}

func runVersion(_ context.Context, _ config.Config, _ *slog.Logger, _ []string) error {
	fmt.Fprintf(os.Stdout, "lookout %s (schema version %d)\n", version, store.Version())
	return nil
}

func runConfig(_ context.Context, cfg config.Config, _ *slog.Logger, _ []string) error {
	out, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
