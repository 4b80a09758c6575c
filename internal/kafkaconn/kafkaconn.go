// Package kafkaconn builds Kafka readers, writers and admin calls from
// lookout's configuration, so TLS and SASL are set up the same way for every
// stage and secrets never leave the config.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/lookout-dev/lookout/internal/config"
)

// Conn holds the resolved connection settings for one cluster.
type Conn struct {
	cfg  config.Kafka
	tls  *tls.Config
	sasl sasl.Mechanism
}

// New resolves TLS material and the SASL mechanism from cfg.
func New(cfg config.Kafka) (*Conn, error) {
	c := &Conn{cfg: cfg}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		c.tls = tc
	}
	mech, err := mechanism(cfg.SASL)
	if err != nil {
		return nil, err
	}
	c.sasl = mech
	return c, nil
}

func mechanism(s config.SASL) (sasl.Mechanism, error) {
	switch strings.ToLower(s.Mechanism) {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: s.Username, Password: string(s.Password)}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, s.Username, string(s.Password))
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, s.Username, string(s.Password))
	default:
		return nil, fmt.Errorf("kafka sasl: unknown mechanism %q", s.Mechanism)
	}
}

func (c *Conn) dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      c.cfg.ClientID,
		Timeout:       10 * time.Second,
		DualStack:     true,
		TLS:           c.tls,
		SASLMechanism: c.sasl,
	}
}

// Writer returns a producer for topic that hashes keys to partitions, so all
// events with one key land on one partition.
func (c *Conn) Writer(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.cfg.Brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		// Under the brokers' default max.message.bytes (1 MB), which bounds a batch.
		BatchBytes: 1_000_000,
		Transport: &kafka.Transport{
			ClientID: c.cfg.ClientID,
			TLS:      c.tls,
			SASL:     c.sasl,
			Dial:     (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		},
	}
}

// EnsureTopics creates the given topics with partitions partitions where they
// do not exist yet. Existing topics are left as they are.
func (c *Conn) EnsureTopics(ctx context.Context, partitions int, topics ...string) error {
	client := &kafka.Client{
		Addr:      kafka.TCP(c.cfg.Brokers...),
		Timeout:   10 * time.Second,
		Transport: c.Writer("").Transport,
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for topic, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, terr)
		}
	}
	return nil
}
