// Command lookout keeps vision models honest in production: it ingests
// prediction events from Kafka into ClickHouse, embeds a sample of the images
// with a DINOv2 ONNX model and flags domain shift per model × source.
//
// Usage:
//
//	lookout <command> [flags]
//
// Commands (`lookout help` lists them with a line each):
//
//	serve         run ingest, embedding and the drift job, with /metrics
//	migrate       apply ClickHouse schema migrations and exit
//	devkafka      run the development Kafka broker (kfake)
//	simulate      publish synthetic camera traffic with a domain shift
//	demo          run broker, service and simulator together and report drift
//	drift         reference windows, one-off runs, calibration, offline tests
//	embed         embedding benchmark and backfill
//	router        the canary router with its rollout controller and web page
//	rollout       drive rollouts and rollbacks through the router's admin API
//	al            active-learning selection, the labelling queue, exports
//	bench-ingest  the ingest benchmark against kcat | clickhouse-client
//	token         make an API token and its hash
//	healthcheck   probe a running service (for container health checks)
//	config        print the effective configuration (secrets redacted)
//	version       print the build and schema versions
//
// Every command reads the YAML file given by -config (optional; defaults run
// the local demo) with LOOKOUT_* environment overrides.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lookout-dev/lookout/internal/config"
)

// version is set by the linker (-ldflags "-X main.version=...").
var version = "dev"

type command struct {
	name    string
	summary string
	// flags, when set, registers the command's own flags next to -config.
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error
}

func commands() []command {
	var demo demoOptions
	return append([]command{
		{name: "serve", summary: "run ingest, embedding and the drift job, with /metrics", run: runServe},
		{name: "migrate", summary: "apply ClickHouse schema migrations and exit", run: runMigrate},
		{name: "devkafka", summary: "run the development Kafka broker (kfake)", run: runDevKafka},
		{name: "simulate", summary: "publish synthetic camera traffic with a domain shift", run: runSimulate},
		{name: "demo", summary: "run broker, service and simulator together and report drift",
			flags: demo.register, run: demo.run},
		{name: "config", summary: "print the effective configuration (secrets redacted)", run: runConfig},
		{name: "version", summary: "print the build and schema versions", run: runVersion},
	}, registered...)
}

// registered holds commands that live in their own files (router, rollout,
// al, …); each adds itself with register from an init function.
var registered []command

func register(c command) { registered = append(registered, c) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	cmd, ok := find(args[0])
	if !ok {
		fmt.Fprintf(stderr, "lookout: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("lookout "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("LOOKOUT_CONFIG"), "YAML configuration file (env LOOKOUT_CONFIG)")
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "lookout: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, cfg, log, fs.Args()); err != nil && !errors.Is(err, context.Canceled) {
		log.Error(cmd.name+" failed", "err", err)
		return 1
	}
	return 0
}

func find(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lookout <command> [-config file.yaml] [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
