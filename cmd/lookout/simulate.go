package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/kafkaconn"
	"github.com/lookout-dev/lookout/internal/simulate"
)

func runSimulate(ctx context.Context, cfg config.Config, log *slog.Logger, _ []string) error {
	gen, err := simulate.NewGenerator(cfg.Simulate)
	if err != nil {
		return err
	}
	pub, err := newPublisherFor(cfg)
	if err != nil {
		return err
	}
	defer pub.Close()
	sc := gen.Config()
	log.Info("simulating camera traffic", "rate", sc.Rate, "sources", sc.Sources,
		"shift_source", sc.ShiftSource, "shift_after", sc.ShiftAfter, "brokers", cfg.Kafka.Brokers)
	stats, err := gen.Run(ctx, pub, func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) })
	log.Info("simulation stopped", "predictions", stats.Predictions, "labels", stats.Labels, "shifted", stats.Shifted)
	return err
}

// kafkaPublisher sends simulated events to the predictions and labels
// topics, keyed by event_id as the event contract requires.
type kafkaPublisher struct {
	predictions, labels *kafka.Writer
}

func newPublisherFor(cfg config.Config) (*kafkaPublisher, error) {
	c, err := kafkaconn.New(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	k := cfg.Kafka
	return &kafkaPublisher{predictions: c.Writer(k.PredictionsTopic), labels: c.Writer(k.LabelsTopic)}, nil
}

// PublishPredictions implements simulate.Publisher.
func (p *kafkaPublisher) PublishPredictions(ctx context.Context, events []event.Prediction) error {
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		v, err := e.Encode()
		if err != nil {
			return fmt.Errorf("encode prediction: %w", err)
		}
		msgs[i] = kafka.Message{Key: []byte(e.EventID), Value: v}
	}
	if err := p.predictions.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d predictions: %w", len(msgs), err)
	}
	return nil
}

// PublishLabels implements simulate.Publisher.
func (p *kafkaPublisher) PublishLabels(ctx context.Context, labels []event.Label) error {
	msgs := make([]kafka.Message, len(labels))
	for i, l := range labels {
		v, err := l.Encode()
		if err != nil {
			return fmt.Errorf("encode label: %w", err)
		}
		msgs[i] = kafka.Message{Key: []byte(l.EventID), Value: v}
	}
	if err := p.labels.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d labels: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes both writers.
func (p *kafkaPublisher) Close() error {
	err1 := p.predictions.Close()
	err2 := p.labels.Close()
	if err1 != nil {
		return err1
	}
	return err2
}
