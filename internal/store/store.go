// Package store opens lookout's ClickHouse connection and keeps its schema
// current. The SQL here and in the readers runs on ClickHouse 18.16 (the only
// server Debian packages) as well as on current releases, so it avoids
// DateTime64, Map, TTL, window functions and server-side parameters.
package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/config"
)

// Open connects to ClickHouse with database "default" replaced by
// cfg.Database, creating that database first if needed, and checks the
// connection with a ping.
func Open(ctx context.Context, cfg config.ClickHouse) (driver.Conn, error) {
	boot, err := open(ctx, cfg, "default")
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", cfg.Database, err)
	}
	return open(ctx, cfg, cfg.Database)
}

func open(ctx context.Context, cfg config.ClickHouse, database string) (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr: cfg.Addr,
		Auth: clickhouse.Auth{
			Database: database,
			Username: cfg.Username,
			Password: string(cfg.Password),
		},
		DialTimeout:  cfg.DialTimeout,
		MaxOpenConns: 8,
		MaxIdleConns: 4,
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("clickhouse tls: %w", err)
		}
		opts.TLS = tc
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", cfg.Addr, err)
	}
	return conn, nil
}
