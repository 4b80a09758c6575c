package stream

import (
	"strconv"

	"github.com/segmentio/kafka-go"
)

// Header names on dead-letter messages. The value and key are the original
// bytes, untouched, so a fixed producer can replay them.
const (
	HeaderReason    = "lookout-reason"
	HeaderError     = "lookout-error"
	HeaderTopic     = "lookout-source-topic"
	HeaderPartition = "lookout-source-partition"
	HeaderOffset    = "lookout-source-offset"
)

type batch[T any] struct {
	items []T
	dead  []kafka.Message
	// deadWritten is set once dead is on the dead-letter topic: a write
	// begun again after a failure must not send them twice.
	deadWritten bool
	reasons     map[string]int
	skipped     int
	topic       string
	last        []int64 // by partition: the newest offset, -1 for none
	n           int
}

func (b *batch[T]) size() int { return b.n }

func (b *batch[T]) add(d decoded[T], reason func(error) string) {
	switch {
	case d.err != nil:
		b.addDead(d.msg, reason(d.err), d.err)
	case !d.ok:
		b.addSkipped(d.msg)
	default:
		b.addItem(d.msg, d.item)
	}
}

// track notes m's offset as the batch's newest in its partition. A batch
// holds one topic's messages; partitions are small numbers, so a slice
// indexed by partition does what a map did at a tenth of the cost.
func (b *batch[T]) track(m kafka.Message) {
	b.topic = m.Topic
	for m.Partition >= len(b.last) {
		b.last = append(b.last, -1)
	}
	b.last[m.Partition] = max(b.last[m.Partition], m.Offset)
	b.n++
}

func (b *batch[T]) addItem(m kafka.Message, item T) {
	b.items = append(b.items, item)
	b.track(m)
}

func (b *batch[T]) addSkipped(m kafka.Message) {
	b.skipped++
	b.track(m)
}

func (b *batch[T]) addDead(m kafka.Message, reason string, err error) {
	if b.reasons == nil {
		b.reasons = make(map[string]int)
	}
	b.reasons[reason]++
	detail := err.Error()
	if len(detail) > 512 {
		detail = detail[:512]
	}
	b.dead = append(b.dead, kafka.Message{
		Key:   m.Key,
		Value: m.Value,
		Headers: append(append([]kafka.Header(nil), m.Headers...),
			kafka.Header{Key: HeaderReason, Value: []byte(reason)},
			kafka.Header{Key: HeaderError, Value: []byte(detail)},
			kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
			kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		),
	})
	b.track(m)
}
