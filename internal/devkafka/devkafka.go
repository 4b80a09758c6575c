// Package devkafka runs an in-process Kafka wire-protocol broker (kfake) for
// the demo and tests: no Kafka distribution is installable on the machines
// lookout is developed on, and real clients (kafka-go, kcat) talk to it.
package devkafka

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configures a development broker.
type Options struct {
	// Listen is host:port; port 0 picks a free one.
	Listen string
	// DataDir persists topics and offsets across restarts when non-empty.
	DataDir string
	// Partitions is the partition count of each pre-created topic.
	Partitions int
	// Topics are created at start. Auto-created topics would be lost on kill -9.
	Topics []string
}

// Broker is a running development broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts the broker and returns once it accepts connections.
func Start(o Options) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("devkafka listen %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("devkafka listen %q: bad port", o.Listen)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(o.Partitions), o.Topics...),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			// kfake binds 127.0.0.1; honour the configured host instead.
			_, p, _ := net.SplitHostPort(addr)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
	}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start devkafka on %s: %w", o.Listen, err)
	}
	return &Broker{cluster: c}, nil
}

// Addrs returns the broker addresses clients should use.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker, flushing persisted state.
func (b *Broker) Close() { b.cluster.Close() }
