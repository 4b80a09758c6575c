package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Lead runs lead while this process is the leader for role and returns when
// ctx ends. Work that must run once per deployment (the drift job) uses it so
// that any number of instances can run with the same configuration.
//
// The election is Kafka's own group membership: every candidate joins the
// consumer group "<group_id>-leader-<role>" on the leader topic, and the
// member the coordinator assigns partition 0 leads. A rebalance (a member
// joins, leaves or stops heartbeating) ends the generation, which cancels
// lead's context before any other member can be assigned the partition, so two
// leaders never overlap within one generation of the group.
func (c *Conn) Lead(ctx context.Context, role string, log *slog.Logger, lead func(context.Context)) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID + "-leader-" + role,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.dialer(),
		Topics:            []string{c.cfg.LeaderTopic},
		HeartbeatInterval: 2 * time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  time.Second,
	})
	if err != nil {
		return fmt.Errorf("leader election for %s: %w", role, err)
	}
	defer group.Close()
	for {
		gen, err := group.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, kafka.ErrGroupClosed):
			return nil
		case err != nil:
			log.Warn("leader election: joining the group failed, retrying", "role", role, "err", err)
			continue
		}
		if !holdsPartitionZero(gen, c.cfg.LeaderTopic) {
			log.Info("leader election: following", "role", role, "generation", gen.ID)
			continue
		}
		log.Info("leader election: leading", "role", role, "generation", gen.ID)
		done := make(chan struct{})
		gen.Start(func(genCtx context.Context) {
			defer close(done)
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-genCtx.Done():
					cancel()
				case <-runCtx.Done():
				}
			}()
			lead(runCtx)
		})
		<-done
		log.Info("leader election: leadership ended", "role", role, "generation", gen.ID)
	}
}

func holdsPartitionZero(gen *kafka.Generation, topic string) bool {
	for _, a := range gen.Assignments[topic] {
		if a.ID == 0 {
			return true
		}
	}
	return false
}
