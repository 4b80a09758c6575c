package main

import (
	"bytes"
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
	"time"

	"github.com/lookout-dev/lookout/internal/config"
)

func init() {
	var o rolloutOptions
	register(command{name: "rollout",
		summary: "drive rollouts: start|status|pause|resume|promote|abort, rollback|approve|reject|audit",
		flags:   o.register, run: o.run})
}

type rolloutOptions struct {
	admin     string
	tokenFile string
	out       io.Writer
}

func (o *rolloutOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.admin, "admin", "", "router admin URL (default http://<canary.admin_listen>)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token (default: env LOOKOUT_TOKEN)")
}

const rolloutUsage = `usage: lookout rollout [-admin URL] [-token-file F] <command>
  status                                   show the serving route, rollout, analysis and rollbacks
  start -canary NAME [-steps 5,25,50,100] [-step-pause 1m] [-shadow PCT] [-reason TEXT]
  pause|resume|promote|abort ID [-reason TEXT]
  rollback -reason TEXT                    request a rollback to the previous stable (needs an approver)
  approve|reject REQUEST_ID [-reason TEXT] decide a rollback request (approver role; not your own)
  audit [-limit N]                         print the audit trail
The token comes from LOOKOUT_TOKEN or -token-file, never from the command line.`

func (o *rolloutOptions) run(ctx context.Context, cfg config.Config, _ *slog.Logger, args []string) error {
	if o.out == nil {
		o.out = os.Stdout
	}
	if len(args) == 0 {
		return errors.New(rolloutUsage)
	}
	if o.admin == "" {
		o.admin = "http://" + cfg.Canary.AdminListen
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("rollout "+cmd, flag.ContinueOnError)
	reason := fs.String("reason", "", "why (recorded in the audit trail)")
	switch cmd {
	case "status":
		return o.call(ctx, "GET", "/api/v1/state", nil)
	case "start":
		canary := fs.String("canary", "", "backend to roll out")
		steps := fs.String("steps", "", "comma-separated canary weights in percent (default: canary.rollout.steps)")
		pause := fs.Duration("step-pause", 0, "least time per step (default: canary.rollout.step_pause)")
		shadow := fs.Float64("shadow", -1, "percent of stable traffic mirrored to the canary (default: config)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		req := map[string]any{"canary": *canary, "reason": *reason}
		if *steps != "" {
			var ws []float64
			for _, s := range strings.Split(*steps, ",") {
				w, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
				if err != nil {
					return fmt.Errorf("-steps: %q is not a number", s)
				}
				ws = append(ws, w)
			}
			req["steps"] = ws
		}
		if *pause > 0 {
			req["step_pause"] = *pause
		}
		if *shadow >= 0 {
			req["shadow_percent"] = *shadow
		}
		return o.call(ctx, "POST", "/api/v1/rollouts", req)
	case "pause", "resume", "promote", "abort", "approve", "reject":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return fmt.Errorf("rollout %s needs an id\n%s", cmd, rolloutUsage)
		}
		id := rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return err
		}
		path := "/api/v1/rollouts/" + id + "/" + cmd
		if cmd == "approve" || cmd == "reject" {
			path = "/api/v1/rollbacks/" + id + "/" + cmd
		}
		return o.call(ctx, "POST", path, map[string]any{"reason": *reason})
	case "rollback":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return o.call(ctx, "POST", "/api/v1/rollbacks", map[string]any{"reason": *reason})
	case "audit":
		limit := fs.Int("limit", 50, "entries to show")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return o.call(ctx, "GET", "/api/v1/audit?limit="+strconv.Itoa(*limit), nil)
	}
	return fmt.Errorf("unknown rollout command %q\n%s", cmd, rolloutUsage)
}

func (o *rolloutOptions) token() (string, error) {
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := os.Getenv("LOOKOUT_TOKEN"); t != "" {
		return t, nil
	}
	return "", errors.New("no API token: set LOOKOUT_TOKEN or -token-file")
}

// call sends one admin API request and prints the JSON answer.
func (o *rolloutOptions) call(ctx context.Context, method, path string, body any) error {
	tok, err := o.token()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(o.admin, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = o.out.Write(b)
	return err
}
