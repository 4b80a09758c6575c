package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lookout-dev/lookout/drift"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
)

func init() {
	register(command{name: "drift", summary: "drift references (pin|list|show|delete), one run, calibration, offline tests", run: runDrift})
}

const driftUsage = `usage: lookout drift [-config file.yaml] <subcommand> [flags]

  reference pin    -model M -version V -source S -from T -to T [-from-model M2 -from-version V2 -from-source S2] [-note text]
                   pin (or replace) the reference window of a scope; -from-* imports the range from another scope
  reference list   list pinned references
  reference show   -model M -version V -source S
  reference delete -model M -version V -source S   (the scope falls back to drift.reference_mode)
  run              [-at T] [-json]   evaluate every scope once, store the reports, print them
  calibrate        [-runs 200] [-power-runs 100] [-delay-runs 40] [-n 300] [-alpha A] [-markdown|-json]
                   false-alarm rate, power and detection delay of every test on synthetic streams (no ClickHouse)
  test             -method ks|mmd|chi2|psi|js -ref FILE -cur FILE [-json]
                   one test on files (CSV or JSON lines: a number, a vector, or a label[,count] per row)

Times are RFC 3339 (2026-11-23T10:00:00Z) or relative to now (-2h).`

// runDrift dispatches the drift subcommands.
func runDrift(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, driftUsage)
		return errors.New("drift: missing subcommand")
	}
	switch args[0] {
	case "reference", "ref":
		if len(args) < 2 {
			return errors.New("drift reference: want pin, list, show or delete")
		}
		return runDriftReference(ctx, cfg, log, args[1], args[2:])
	case "run":
		return runDriftOnce(ctx, cfg, log, args[1:])
	case "calibrate":
		return runDriftCalibrate(ctx, cfg, args[1:], os.Stdout)
	case "test":
		return runDriftTest(cfg.Drift, args[1:], os.Stdout)
	}
	fmt.Fprintln(os.Stderr, driftUsage)
	return fmt.Errorf("drift: unknown subcommand %q", args[0])
}

type scopeFlags struct {
	model, version, source string
}

func (s *scopeFlags) register(fs *flag.FlagSet, prefix, what string) {
	fs.StringVar(&s.model, prefix+"model", "", what+" model")
	fs.StringVar(&s.version, prefix+"version", "", what+" model version")
	fs.StringVar(&s.source, prefix+"source", "", what+" source")
}

func (s scopeFlags) scope() drift.Scope {
	return drift.Scope{Model: s.model, Version: s.version, Source: s.source}
}

func (s scopeFlags) required() error {
	if s.model == "" || s.source == "" {
		return errors.New("-model and -source are required (-version too when the model has versions)")
	}
	return nil
}

func runDriftReference(ctx context.Context, cfg config.Config, log *slog.Logger, verb string, args []string) error {
	fs := flag.NewFlagSet("lookout drift reference "+verb, flag.ContinueOnError)
	var sc, from scopeFlags
	sc.register(fs, "", "scope")
	from.register(fs, "from-", "import the reference data from this scope:")
	fromT := fs.String("from", "", "reference start (RFC 3339 or -duration)")
	toT := fs.String("to", "", "reference end (RFC 3339 or -duration)")
	note := fs.String("note", "", "why this reference (shown by list/show)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	out := os.Stdout
	switch verb {
	case "pin", "replace":
		if err := sc.required(); err != nil {
			return err
		}
		now := time.Now()
		f, err := parseTime(*fromT, now)
		if err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		t, err := parseTime(*toT, now)
		if err != nil {
			return fmt.Errorf("-to: %w", err)
		}
		ref := drift.Reference{Scope: sc.scope(), Window: drift.Window{From: f, To: t}, Note: *note, CreatedBy: currentUser()}
		if from.model != "" || from.source != "" || from.version != "" {
			ref.From = drift.Scope{Model: or(from.model, sc.model), Version: or(from.version, sc.version), Source: or(from.source, sc.source)}
		}
		if err := drift.PinReference(ctx, conn, ref); err != nil {
			return err
		}
		fmt.Fprintf(out, "pinned reference for %s\n", ref.Scope)
		return nil
	case "list":
		refs, err := drift.ListReferences(ctx, conn)
		if err != nil {
			return err
		}
		printReferences(out, refs)
		return nil
	case "show":
		if err := sc.required(); err != nil {
			return err
		}
		ref, err := drift.GetReference(ctx, conn, sc.scope())
		if err != nil {
			return err
		}
		printReferences(out, []drift.Reference{ref})
		return nil
	case "delete":
		if err := sc.required(); err != nil {
			return err
		}
		if err := drift.DeleteReference(ctx, conn, sc.scope()); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted the pinned reference of %s (it now uses drift.reference_mode=%s)\n", sc.scope(), cfg.Drift.ReferenceMode)
		return nil
	}
	return fmt.Errorf("drift reference: unknown verb %q (want pin, list, show or delete)", verb)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// parseTime accepts RFC 3339 or a negative duration relative to now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("a time is required")
	}
	if strings.HasPrefix(s, "-") {
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func printReferences(w io.Writer, refs []drift.Reference) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tDATA FROM\tFROM\tTO\tBY\tAT\tNOTE")
	for _, r := range refs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scope, r.From, r.Window.From.UTC().Format(time.RFC3339),
			r.Window.To.UTC().Format(time.RFC3339), r.CreatedBy, r.CreatedAt.UTC().Format(time.RFC3339), r.Note)
	}
	tw.Flush()
	if len(refs) == 0 {
		fmt.Fprintln(w, "(no pinned references: every scope uses drift.reference_mode)")
	}
}

func runDriftOnce(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("lookout drift run", flag.ContinueOnError)
	at := fs.String("at", "", "evaluate as of this time (RFC 3339 or -duration; default now)")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	now := time.Now()
	if *at != "" {
		t, err := parseTime(*at, now)
		if err != nil {
			return fmt.Errorf("-at: %w", err)
		}
		now = t
	}
	conn, err := store.OpenMigrated(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	runs, err := drift.NewJob(conn, cfg.Drift, nil, log).RunScopes(ctx, now)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(runsJSON(runs))
	}
	printRuns(os.Stdout, runs)
	return nil
}

// runsJSON shapes runs for -json output, with unknown numbers (NaN: no
// labels, untested items) as null.
func runsJSON(runs []drift.ScopeRun) []map[string]any {
	out := make([]map[string]any, len(runs))
	for i, r := range runs {
		var reps []map[string]any
		for _, rep := range r.Reports {
			var ex []map[string]any
			for _, e := range rep.Explain {
				ex = append(ex, map[string]any{"kind": e.Kind, "item": e.Item, "value": num(e.Value), "p_value": num(e.PValue), "detail": e.Detail})
			}
			reps = append(reps, map[string]any{"test": rep.Test, "status": rep.Status, "statistic": num(rep.Statistic),
				"p_value": num(rep.PValue), "effect": num(rep.Effect), "min_effect": rep.MinEffect, "n_ref": rep.NRef,
				"n_cur": rep.NCur, "detail": rep.Detail, "embedder": rep.Embedder, "explain": ex,
				"ref": []time.Time{rep.Ref.From, rep.Ref.To}, "cur": []time.Time{rep.Cur.From, rep.Cur.To}})
		}
		a := r.Accuracy
		out[i] = map[string]any{"model": r.Scope.Model, "version": r.Scope.Version, "source": r.Scope.Source,
			"reference": r.Reference, "reports": reps, "accuracy": map[string]any{
				"avg_confidence": num(a.AvgConfidence), "atc": num(a.ATC), "realised": num(a.Realised),
				"labeled": a.Labeled, "reference_realised": num(a.RefRealised), "reference_labeled": a.RefLabeled}}
	}
	return out
}

func num(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

func printRuns(w io.Writer, runs []drift.ScopeRun) {
	for _, run := range runs {
		a := run.Accuracy
		fmt.Fprintf(w, "%s  (reference: %s)\n", run.Scope, run.Reference)
		fmt.Fprintf(w, "  accuracy: estimated %s (mean confidence), %s (ATC); realised %s (%d labels); reference realised %s (%d labels)\n",
			pct(a.AvgConfidence), pct(a.ATC), pct(a.Realised), a.Labeled, pct(a.RefRealised), a.RefLabeled)
		for _, r := range run.Reports {
			fmt.Fprintf(w, "  %-14s %-17s p=%-9.3g effect=%-8.4f (floor %.3g) n=%d/%d  %s\n",
				r.Test, r.Status, r.PValue, r.Effect, r.MinEffect, r.NRef, r.NCur, r.Detail)
			if r.Flagged() {
				for _, e := range r.Explain {
					fmt.Fprintf(w, "      %-11s %-28s %+.4g  %s\n", e.Kind, e.Item, e.Value, e.Detail)
				}
			}
		}
	}
	if len(runs) == 0 {
		fmt.Fprintln(w, "no scopes: the predictions table is empty")
	}
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func runDriftCalibrate(ctx context.Context, cfg config.Config, args []string, w io.Writer) error {
	o := drift.DefaultCalibrationOptions(drift.ParamsFromConfig(cfg.Drift))
	fs := flag.NewFlagSet("lookout drift calibrate", flag.ContinueOnError)
	fs.IntVar(&o.NullRuns, "runs", o.NullRuns, "null runs (no shift) per test")
	fs.IntVar(&o.PowerRuns, "power-runs", o.PowerRuns, "runs per shift size for power")
	fs.IntVar(&o.DelayRuns, "delay-runs", o.DelayRuns, "streams per shift size for detection delay")
	fs.IntVar(&o.N, "n", o.N, "events per window")
	fs.IntVar(&o.Params.Permutations, "permutations", o.Params.Permutations, "MMD permutations")
	fs.Float64Var(&o.Params.Alpha, "alpha", o.Params.Alpha, "significance level")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed")
	tests := fs.String("tests", "", "comma-separated tests to calibrate (default all)")
	shifts := fs.String("shifts", "0.05,0.1,0.2,0.4", "shift sizes δ (share of traffic from the new domain)")
	markdown := fs.Bool("markdown", false, "print a Markdown table")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Params.MinSamples = min(o.Params.MinSamples, o.N)
	o.Shifts = nil
	for _, s := range strings.Split(*shifts, ",") {
		var v float64
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%g", &v); err != nil || v < 0 || v > 1 {
			return fmt.Errorf("-shifts: bad value %q", s)
		}
		o.Shifts = append(o.Shifts, v)
	}
	if *tests != "" {
		o.Tests = strings.Split(*tests, ",")
	}
	o.Progress = func(s string) { fmt.Fprintln(os.Stderr, "calibrate:", s) }
	start := time.Now()
	cal, err := drift.Calibrate(ctx, o)
	if err != nil {
		return err
	}
	elapsed := time.Since(start).Round(time.Second)
	switch {
	case *asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(calibrationJSON(cal))
	case *markdown:
		printCalibrationMarkdown(w, cal, elapsed)
	default:
		printCalibration(w, cal, elapsed)
	}
	return nil
}

func calibrationJSON(cal drift.Calibration) any {
	var out []map[string]any
	for _, t := range cal.Tests {
		var delays []any
		for _, d := range t.MedianDelay {
			delays = append(delays, num(d))
		}
		out = append(out, map[string]any{"test": t.Test, "null_runs": t.NullRuns, "significant": t.Significant,
			"significant_ci95": []float64{t.SignificantCI.Lo, t.SignificantCI.Hi}, "alarms": t.Alarms,
			"alarm_ci95": []float64{t.AlarmCI.Lo, t.AlarmCI.Hi}, "shifts": cal.Options.Shifts, "power": t.Power, "power_significant": t.PowerSignificant,
			"median_delay_events": delays, "delay_detected": t.Detected, "delay_runs": t.DelayRuns})
	}
	return map[string]any{"alpha": cal.Options.Params.Alpha, "n": cal.Options.N, "seed": cal.Options.Seed, "tests": out}
}

func printCalibration(w io.Writer, cal drift.Calibration, elapsed time.Duration) {
	o := cal.Options
	fmt.Fprintf(w, "calibration: α=%g, %d events per window, %d null runs, %d power runs, %d delay streams per shift, seed %d (%s)\n\n",
		o.Params.Alpha, o.N, o.NullRuns, o.PowerRuns, o.DelayRuns, o.Seed, elapsed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "TEST\tNULL p<α\t95% CI\tNULL ALARMS\t95% CI"
	for _, s := range o.Shifts {
		header += fmt.Sprintf("\tPOWER δ=%g (p<α)", s)
	}
	for _, s := range o.Shifts {
		header += fmt.Sprintf("\tDELAY δ=%g", s)
	}
	fmt.Fprintln(tw, header)
	for _, t := range cal.Tests {
		line := fmt.Sprintf("%s\t%d/%d\t[%.3f, %.3f]\t%d/%d\t[%.3f, %.3f]", t.Test, t.Significant, t.NullRuns,
			t.SignificantCI.Lo, t.SignificantCI.Hi, t.Alarms, t.NullRuns, t.AlarmCI.Lo, t.AlarmCI.Hi)
		for i, p := range t.Power {
			line += fmt.Sprintf("\t%.2f (%.2f)", p, t.PowerSignificant[i])
		}
		for i, d := range t.MedianDelay {
			line += "\t" + delayString(d, t.Detected[i], t.DelayRuns)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func delayString(d float64, detected, runs int) string {
	if math.IsNaN(d) {
		return fmt.Sprintf("— (%d/%d)", detected, runs)
	}
	return fmt.Sprintf("%.0f (%d/%d)", d, detected, runs)
}

func printCalibrationMarkdown(w io.Writer, cal drift.Calibration, elapsed time.Duration) {
	o := cal.Options
	fmt.Fprintf(w, "α = %g, %d events per window, %d null runs, %d power runs and %d delay streams per shift, seed %d; took %s.\n\n",
		o.Params.Alpha, o.N, o.NullRuns, o.PowerRuns, o.DelayRuns, o.Seed, elapsed)
	head := "| test | null p<α | 95% CI (Clopper–Pearson) | null alarms | 95% CI |"
	sep := "|---|---|---|---|---|"
	for _, s := range o.Shifts {
		head += fmt.Sprintf(" power δ=%g (p<α only) |", s)
		sep += "---|"
	}
	for _, s := range o.Shifts {
		head += fmt.Sprintf(" delay δ=%g |", s)
		sep += "---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, t := range cal.Tests {
		line := fmt.Sprintf("| %s | %d/%d | [%.3f, %.3f] | %d/%d | [%.3f, %.3f] |", t.Test, t.Significant, t.NullRuns,
			t.SignificantCI.Lo, t.SignificantCI.Hi, t.Alarms, t.NullRuns, t.AlarmCI.Lo, t.AlarmCI.Hi)
		for i, p := range t.Power {
			line += fmt.Sprintf(" %.2f (%.2f) |", p, t.PowerSignificant[i])
		}
		for i, d := range t.MedianDelay {
			line += " " + delayString(d, t.Detected[i], t.DelayRuns) + " |"
		}
		fmt.Fprintln(w, line)
	}
}
