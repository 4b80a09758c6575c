package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lookout-dev/lookout/drift"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/store"
	"github.com/lookout-dev/lookout/internal/testenv"
)

func TestDriftCalibrateCommand(t *testing.T) {
	cfg := config.Default()
	var out bytes.Buffer
	err := runDriftCalibrate(context.Background(), cfg,
		[]string{"-runs", "20", "-power-runs", "4", "-delay-runs", "1", "-n", "100", "-shifts", "0.6", "-permutations", "199", "-markdown"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, name := range drift.Tests {
		if !strings.Contains(out.String(), "| "+name+" | ") {
			t.Errorf("calibration table lacks %s", name)
		}
	}
}

func TestDriftReferenceCommands(t *testing.T) {
	cfg := config.Default()
	_, cfg.ClickHouse = testenv.ClickHouse(t)
	ctx := context.Background()
	log := testenv.Logger(t)
	pin := []string{"-model", "m", "-version", "v1", "-source", "cam-4", "-from", "2026-11-23T08:00:00Z", "-to", "2026-11-23T09:00:00Z",
		"-from-source", "cam-1", "-note", "imported"}
	if err := runDriftReference(ctx, cfg, log, "pin", pin); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ref, err := drift.GetReference(ctx, conn, drift.Scope{Model: "m", Version: "v1", Source: "cam-4"})
	if err != nil {
		t.Fatal(err)
	}
	if ref.From.Source != "cam-1" || ref.From.Version != "v1" || ref.Note != "imported" || ref.Window.To.Hour() != 9 {
		t.Errorf("pinned %+v", ref)
	}
	if err := runDriftReference(ctx, cfg, log, "delete", []string{"-model", "m", "-version", "v1", "-source", "cam-4"}); err != nil {
		t.Fatal(err)
	}
	if err := runDriftReference(ctx, cfg, log, "show", []string{"-model", "m", "-version", "v1", "-source", "cam-4"}); err == nil {
		t.Error("show after delete succeeded")
	}
	if err := runDriftReference(ctx, cfg, log, "pin", []string{"-model", "m"}); err == nil {
		t.Error("pin without source accepted")
	}
}
