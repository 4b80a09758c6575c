package queue

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/lookout-dev/lookout/internal/event"
)

// KafkaPublisher publishes labels to a Kafka topic, keyed by event_id like
// every lookout message.
type KafkaPublisher struct {
	W *kafka.Writer
}

// Publish implements Publisher. It returns once the broker acknowledged
// every label (the writer's RequiredAcks).
func (p KafkaPublisher) Publish(ctx context.Context, labels []event.Label) error {
	msgs := make([]kafka.Message, len(labels))
	for i, l := range labels {
		b, err := l.Encode()
		if err != nil {
			return fmt.Errorf("encode label %q: %w", l.EventID, err)
		}
		msgs[i] = kafka.Message{Key: []byte(l.EventID), Value: b}
	}
	if err := p.W.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write %d labels: %w", len(msgs), err)
	}
	return nil
}
