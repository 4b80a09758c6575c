package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/lookout-dev/lookout/drift/embed"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
)

func init() {
	register(command{
		name:    "embed",
		summary: "embedding tools: `embed bench` (throughput vs raw ONNX Runtime), `embed backfill` (embed past events)",
		run:     runEmbed,
	})
}

// runEmbed dispatches to the embed subcommands, each with its own flags
// (given after the subcommand name).
func runEmbed(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: lookout embed [-config file] bench|backfill [flags] (-h for flags)")
	}
	switch args[0] {
	case "bench":
		var o embedBenchOptions
		fs := flag.NewFlagSet("lookout embed bench", flag.ContinueOnError)
		o.register(fs, cfg)
		if err := fs.Parse(args[1:]); err != nil {
			return helpIsNotAnError(err)
		}
		return o.run(ctx, cfg, log, os.Stdout)
	case "backfill":
		var o backfillOptions
		fs := flag.NewFlagSet("lookout embed backfill", flag.ContinueOnError)
		o.register(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return helpIsNotAnError(err)
		}
		return o.run(ctx, cfg, log, os.Stderr)
	}
	return fmt.Errorf("embed: unknown subcommand %q (want bench or backfill)", args[0])
}

// helpIsNotAnError makes -h print the flags and exit 0.
func helpIsNotAnError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// embedBenchOptions are the flags of `lookout embed bench`.
type embedBenchOptions struct {
	model                       string
	images, distinct            int
	threads, inferers, batch, w int
	dir                         string
	spin                        bool
	rounds                      int
}

func (o *embedBenchOptions) register(fs *flag.FlagSet, cfg config.Config) {
	fs.StringVar(&o.model, "model", ".lookout/models/dinov2-vits14-random.onnx", "ONNX model (make model-vits14 writes the default)")
	fs.IntVar(&o.images, "images", 120, "images per measured phase")
	fs.IntVar(&o.distinct, "distinct", 32, "distinct 640x480 JPEG files, reused cyclically")
	fs.IntVar(&o.threads, "threads", 1, "ONNX Runtime intra-op threads per run")
	fs.IntVar(&o.inferers, "inferers", 0, "concurrent model runs on the shared session (0: cores / threads)")
	fs.IntVar(&o.batch, "batch", cfg.Embed.InferBatch, "images per model run")
	fs.IntVar(&o.w, "workers", cfg.Embed.Workers, "fetch/decode/preprocess workers")
	fs.BoolVar(&o.spin, "spin", false, "let ONNX Runtime's idle threads spin (ORT's own default)")
	fs.IntVar(&o.rounds, "rounds", 2, "alternate raw and pipeline phases this many times (then one more raw phase)")
	fs.StringVar(&o.dir, "dir", "", "directory for the JPEG files (default: a temporary directory)")
}

// run benchmarks the embedding stage against raw ONNX Runtime in one
// process, on the ClickHouse database lookout_bench_embed.
func (o *embedBenchOptions) run(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) error {
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "lookout-embed-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if o.inferers <= 0 {
		o.inferers = max(1, runtime.NumCPU()/max(o.threads, 1))
	}
	cfg.ClickHouse.Database = "lookout_bench_embed"
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	e := cfg.Embed
	e.ModelPath, e.IntraOpThreads, e.Inferers, e.InferBatch, e.Workers, e.ImageRoot = o.model, o.threads, o.inferers, o.batch, o.w, dir
	mc := embed.ModelOptions(e)
	mc.AllowSpinning = o.spin
	model, err := embed.Open(mc)
	if err != nil {
		return fmt.Errorf("model (run `make model-vits14` for the default): %w", err)
	}
	defer model.Close()
	stage := embed.NewStage(model, embed.NewFetchers(e), conn, embed.Options(e), nil)
	if err := stage.Check(); err != nil {
		return err
	}
	fmt.Fprintf(out, "model %s (D=%d, input %d), intra-op threads %d (spinning %v), inferers %d, batch %d, workers %d, GOMAXPROCS %d, %d cores\n",
		model.ID(), model.Dim(), model.InputSize(), o.threads, o.spin, o.inferers, o.batch, o.w, runtime.GOMAXPROCS(0), runtime.NumCPU())
	res, err := embed.Bench(ctx, stage, embed.BenchConfig{Images: o.images, Distinct: o.distinct, Width: 640, Height: 480, Dir: dir, Rounds: o.rounds},
		func(s string) { fmt.Fprintln(out, s) })
	if err != nil {
		return err
	}
	printEmbedBench(out, res)
	return nil
}

func printEmbedBench(out io.Writer, r embed.BenchResult) {
	ms := func(s embed.StepStats) string { return fmt.Sprintf("%.1f", float64(s.PerImage().Microseconds())/1000) }
	cpu := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d.Microseconds())/1000) }
	fmt.Fprintf(out, "\n| raw ORT img/s (min–max) | pipeline img/s | ratio | CPU ms/img raw / pipeline | CPU ratio | fetch ms | decode ms | preprocess ms | infer ms | insert ms | peak RSS MiB |\n")
	fmt.Fprintf(out, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| %.2f (%.2f–%.2f) | %.2f | %.1f%% | %s / %s | %.1f%% | %s | %s | %s | %s | %s | %.0f |\n",
		r.Raw, r.RawMin, r.RawMax, r.Pipeline, 100*r.Ratio(), cpu(r.RawCPU), cpu(r.PipelineCPU), 100*r.CPURatio(),
		ms(r.Steps.Fetch), ms(r.Steps.Decode), ms(r.Steps.Preprocess), ms(r.Steps.Infer), ms(r.Steps.Insert),
		float64(r.PeakRSS)/(1<<20))
	fmt.Fprintf(out, "(step ms: wall time per image inside each step of the pipeline phases; infer is the model run time per image, "+
		"so with concurrent inferers it exceeds 1000/throughput; %d images per phase)\n", r.Images)
}

// backfillOptions are the flags of `lookout embed backfill`.
type backfillOptions struct {
	since, until  string
	sources       string
	models        string
	embedderModel string
	rate          float64
}

func (o *backfillOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.since, "since", "", "start of the range: RFC 3339 time, or a duration before now (e.g. 24h) (required)")
	fs.StringVar(&o.until, "until", "", "end of the range (exclusive), same forms; default now")
	fs.StringVar(&o.sources, "source", "", "comma-separated sources to embed (default all)")
	fs.StringVar(&o.models, "model", "", "comma-separated prediction models to embed (default all)")
	fs.StringVar(&o.embedderModel, "embedder", "", "ONNX embedding model file (default embed.model_path)")
	fs.Float64Var(&o.rate, "rate", 1, "share of the events to embed, by event_id hash (weight 1/rate)")
}

// run embeds the stored predictions of the range that have no embedding from
// the configured model yet, printing progress to out.
func (o *backfillOptions) run(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) error {
	now := time.Now()
	if o.since == "" {
		return errors.New("embed backfill: -since is required")
	}
	since, err := embedWhen(o.since, now)
	if err != nil {
		return fmt.Errorf("embed backfill: -since: %w", err)
	}
	until := now
	if o.until != "" {
		if until, err = embedWhen(o.until, now); err != nil {
			return fmt.Errorf("embed backfill: -until: %w", err)
		}
	}
	if o.rate <= 0 || o.rate > 1 {
		return fmt.Errorf("embed backfill: -rate %v must be within (0,1]", o.rate)
	}
	e := cfg.Embed
	if o.embedderModel != "" {
		e.ModelPath = o.embedderModel
	}
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	model, err := embed.Open(embed.ModelOptions(e))
	if err != nil {
		return fmt.Errorf("embedding model: %w", err)
	}
	defer model.Close()
	stage := embed.NewStage(model, embed.NewFetchers(e), conn, embed.Options(e), nil)
	if err := stage.Check(); err != nil {
		return err
	}
	fmt.Fprintf(out, "backfill %s → %s with %s\n", since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), model.ID())
	res, err := embed.Backfill(ctx, stage, conn, embed.BackfillOptions{
		Since: since, Until: until, Sources: embedList(o.sources), Models: embedList(o.models), Rate: o.rate,
	}, func(p embed.BackfillProgress) {
		fmt.Fprintf(out, "  %d/%d read, %d embedded, %d not sampled, %d failed, %.1f img/s\n",
			p.Seen, p.Total, p.Embedded, p.Unsampled, p.Failed, float64(p.Embedded)/max(p.Elapsed.Seconds(), 1e-9))
	})
	fmt.Fprintf(out, "done: %d events without an embedding, %d read, %d embedded, %d not sampled, %d failed\n",
		res.Total, res.Seen, res.Embedded, res.Unsampled, res.Failed)
	return err
}

// embedWhen reads an RFC 3339 time, or a duration meaning that long before now.
func embedWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func embedList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
