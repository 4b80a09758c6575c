package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lookout-dev/lookout/internal/config"
)

func init() {
	var o healthcheckOptions
	register(command{
		name:    "healthcheck",
		summary: "exit 0 if this host's service answers /healthz (Docker HEALTHCHECK)",
		flags:   o.register,
		run:     o.run,
	})
}

// healthcheckOptions are the flags of `lookout healthcheck`. The command
// exists so the container image needs no curl: Docker runs it inside the
// container against the service's own http.listen address.
type healthcheckOptions struct {
	ready   bool
	timeout time.Duration
}

func (o *healthcheckOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.ready, "ready", false, "check /readyz (consumers running, ClickHouse answering) instead of /healthz")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Second, "give up after this long")
}

func (o *healthcheckOptions) run(ctx context.Context, cfg config.Config, _ *slog.Logger, _ []string) error {
	path := "/healthz"
	if o.ready {
		path = "/readyz"
	}
	url := "http://" + dialAddr(cfg.HTTP.Listen) + path
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s: %s", url, resp.Status, body)
	}
	fmt.Printf("%s: %s", url, body)
	return nil
}

// dialAddr turns a listen address into one to connect to: a wildcard or
// empty host (0.0.0.0:9464, [::]:9464, :9464) becomes loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
