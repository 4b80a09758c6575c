package kafkaconn

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/lookout-dev/lookout/internal/config"
)

// GroupReader consumes one topic in a consumer group, handing out records
// one at a time as kafka-go messages (the type the rest of lookout uses) and
// committing only the offsets it is given. It reads with franz-go: against
// kafka-go's reader it costs a third of the CPU per message (0.6–0.8 µs
// against 1.6–1.9 µs, 1M 560-byte events, this machine), because a record's
// key and value point into the fetched batch instead of being copied out.
type GroupReader struct {
	cl      *kgo.Client
	pending []kafka.Message
}

// Reader returns a consumer-group reader of topic. Offsets are committed only
// by explicit CommitMessages calls, after the work they cover is stored. A
// group starts at the oldest retained offset.
func (c *Conn) Reader(topic, group string) (*GroupReader, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(16 << 20),
		// A short wait keeps Close quick (see DESIGN.md).
		kgo.FetchMaxWait(250 * time.Millisecond),
		// A member that dies without leaving (kill -9) holds its partitions
		// until its session times out.
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(2 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		// The protocols kafka-go's readers offer, so members of both kinds
		// can share a group during a rolling upgrade.
		kgo.Balancers(kgo.RangeBalancer(), kgo.RoundRobinBalancer()),
	}
	if c.cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.cfg.ClientID))
	}
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls))
	}
	if m := groupMechanism(c.cfg.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka reader of %s: %w", topic, err)
	}
	return &GroupReader{cl: cl}, nil
}

// groupMechanism is mechanism for franz-go; New has checked the name.
func groupMechanism(s config.SASL) sasl.Mechanism {
	switch strings.ToLower(s.Mechanism) {
	case "plain":
		return plain.Auth{User: s.Username, Pass: string(s.Password)}.AsMechanism()
	case "scram-sha-256":
		return scram.Auth{User: s.Username, Pass: string(s.Password)}.AsSha256Mechanism()
	case "scram-sha-512":
		return scram.Auth{User: s.Username, Pass: string(s.Password)}.AsSha512Mechanism()
	}
	return nil
}

// FetchMessage returns the next message, waiting until one arrives or ctx
// ends.
func (r *GroupReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for len(r.pending) == 0 {
		if err := r.poll(ctx); err != nil {
			return kafka.Message{}, err
		}
	}
	m := r.pending[0]
	r.pending[0] = kafka.Message{}
	r.pending = r.pending[1:]
	return m, nil
}

// maxPoll bounds the messages taken from the client at once.
const maxPoll = 4096

func (r *GroupReader) poll(ctx context.Context) error {
	fs := r.cl.PollRecords(ctx, maxPoll)
	if err := ctx.Err(); err != nil {
		return err
	}
	if errs := fs.Errors(); len(errs) > 0 && fs.NumRecords() == 0 {
		e := errs[0]
		return fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
	}
	if cap(r.pending) < fs.NumRecords() {
		r.pending = make([]kafka.Message, 0, max(fs.NumRecords(), maxPoll))
	}
	r.pending = r.pending[:0]
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, rec := range p.Records {
			r.pending = append(r.pending, message(rec, p.HighWatermark))
		}
	})
	return nil
}

func message(rec *kgo.Record, highWater int64) kafka.Message {
	m := kafka.Message{
		Topic: rec.Topic, Partition: int(rec.Partition), Offset: rec.Offset,
		HighWaterMark: highWater, Key: rec.Key, Value: rec.Value, Time: rec.Timestamp,
	}
	if len(rec.Headers) > 0 {
		m.Headers = make([]kafka.Header, len(rec.Headers))
		for i, h := range rec.Headers {
			m.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// CommitMessages commits, for each message, the offset after it: the group
// resumes from there.
func (r *GroupReader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, m := range msgs {
		if offsets[m.Topic] == nil {
			offsets[m.Topic] = map[int32]kgo.EpochOffset{}
		}
		p := int32(m.Partition)
		if prev, ok := offsets[m.Topic][p]; !ok || m.Offset+1 > prev.Offset {
			offsets[m.Topic][p] = kgo.EpochOffset{Epoch: -1, Offset: m.Offset + 1}
		}
	}
	var err error
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if cerr != nil {
			err = cerr
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && err == nil {
					err = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, e)
				}
			}
		}
	})
	return err
}

// Close leaves the group and closes the client.
func (r *GroupReader) Close() error {
	r.cl.Close()
	return nil
}
