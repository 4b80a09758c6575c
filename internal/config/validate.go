package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/event"
)

// Validate reports every problem it finds, not just the first, so an operator
// fixes the file in one go.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers: at least one broker address is required")
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("kafka.brokers: %q is not host:port", b)
		}
	}
	for name, v := range map[string]string{
		"kafka.predictions_topic": c.Kafka.PredictionsTopic, "kafka.dlq_topic": c.Kafka.DLQTopic,
		"kafka.labels_topic": c.Kafka.LabelsTopic, "kafka.group_id": c.Kafka.GroupID,
		"kafka.leader_topic": c.Kafka.LeaderTopic,
	} {
		if v == "" {
			bad("%s must not be empty", name)
		}
	}
	if c.Kafka.CreateTopics && c.Kafka.Partitions < 1 {
		bad("kafka.partitions must be ≥ 1 when kafka.create_topics is on")
	}
	switch strings.ToLower(c.Kafka.SASL.Mechanism) {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		bad("kafka.sasl.mechanism: %q is not plain, scram-sha-256 or scram-sha-512", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
		bad("kafka.sasl.username is required with a SASL mechanism")
	}
	if len(c.ClickHouse.Addr) == 0 {
		bad("clickhouse.addr: at least one host:port is required")
	}
	if !validIdent(c.ClickHouse.Database) {
		bad("clickhouse.database: %q must be letters, digits and underscores", c.ClickHouse.Database)
	}
	if c.Ingest.BatchSize < 1 || c.Ingest.FlushInterval <= 0 || c.Ingest.BatchesPerInsert < 1 {
		bad("ingest: batch_size and batches_per_insert must be ≥ 1 and flush_interval > 0")
	}
	if l := c.Ingest.Limits; l.MaxBytes < 1 || l.MaxBytes > event.MaxEventBytes || l.MaxClasses < 1 || l.MaxBoxes < 1 ||
		l.MaxFuture < 0 || l.MaxAge < 0 {
		bad("ingest.limits: max_event_bytes must be 1..%d, max_classes and max_boxes ≥ 1, max_future and max_age ≥ 0 (0 = off)", event.MaxEventBytes)
	}
	errs = append(errs, c.Embed.validate()...)
	errs = append(errs, c.Drift.validate()...)
	errs = append(errs, c.Canary.validate()...)
	errs = append(errs, c.Learning.validate()...)
	if err := auth.Validate(c.Auth.Tokens); err != nil {
		errs = append(errs, err)
	}
	if c.DevKafka.Partitions < 1 {
		bad("devkafka.partitions must be ≥ 1")
	}
	if err := c.Simulate.Validate(); err != nil {
		bad("simulate: %v", err)
	}
	return errors.Join(errs...)
}

func (e *Embed) validate() []error {
	if !e.Enabled {
		return nil
	}
	var errs []error
	if e.ModelPath == "" || e.ORTLibrary == "" || e.ImageRoot == "" {
		errs = append(errs, errors.New("embed: model_path, ort_library and image_root are required when embed is enabled"))
	}
	if e.SampleRate < 0 || e.SampleRate > 1 {
		errs = append(errs, fmt.Errorf("embed.sample_rate %v must be within [0,1]", e.SampleRate))
	}
	if e.Workers < 1 || e.BatchSize < 1 || e.IntraOpThreads < 1 || e.FlushInterval <= 0 || e.MaxImageBytes < 1 {
		errs = append(errs, errors.New("embed: workers, batch_size, intra_op_threads, max_image_bytes must be ≥ 1 and flush_interval > 0"))
	}
	if e.Inferers < 1 || e.InferBatch < 1 {
		errs = append(errs, errors.New("embed: inferers and infer_batch must be ≥ 1"))
	}
	if e.SampleFloor < 0 || e.SampleWindow < 0 || (e.SampleFloor > 0 && e.SampleWindow == 0) {
		errs = append(errs, errors.New("embed: sample_floor must be ≥ 0, with sample_window > 0 when set"))
	}
	if e.UncertaintyBoost < 1 || e.UncertainBelow < 0 || e.UncertainBelow > 1 {
		errs = append(errs, errors.New("embed: uncertainty_boost must be ≥ 1 and uncertain_below within [0,1]"))
	}
	if e.MaxPerSecond < 0 || e.Burst < 0 {
		errs = append(errs, errors.New("embed: max_per_second and burst must be ≥ 0"))
	}
	if e.Crop < 1 || e.ResizeShortest < e.Crop || e.ResizeShortest > 8192 {
		errs = append(errs, fmt.Errorf("embed: need 1 ≤ crop (%d) ≤ resize_shortest (%d) ≤ 8192", e.Crop, e.ResizeShortest))
	}
	if e.FetchTimeout <= 0 {
		errs = append(errs, errors.New("embed.fetch_timeout must be > 0"))
	}
	for _, h := range e.HTTPAllowHosts {
		if h == "" || strings.ContainsAny(h, "/@ ") {
			errs = append(errs, fmt.Errorf("embed.http_allow_hosts: %q is not a host or host:port", h))
		}
	}
	return errs
}

func (d *Drift) validate() []error {
	if !d.Enabled {
		return nil
	}
	var errs []error
	if d.Interval <= 0 || d.Window <= 0 || d.ReferenceDuration <= 0 {
		errs = append(errs, errors.New("drift: interval, window and reference_duration must be > 0"))
	}
	// The MMD test holds the pooled kernel matrix in memory: 2×4096 points
	// is its ceiling (drift/stats.MMDMaxPooled).
	if d.MinSamples < 2 || d.MaxSamples < d.MinSamples || d.MaxSamples > 4096 {
		errs = append(errs, fmt.Errorf("drift: need 2 ≤ min_samples (%d) ≤ max_samples (%d) ≤ 4096", d.MinSamples, d.MaxSamples))
	}
	if d.Permutations < 19 {
		errs = append(errs, fmt.Errorf("drift.permutations %d: at least 19 are needed for p < 0.05 to be reachable", d.Permutations))
	}
	if d.Alpha <= 0 || d.Alpha >= 1 {
		errs = append(errs, fmt.Errorf("drift.alpha %v must be within (0,1)", d.Alpha))
	}
	if d.MinMMD2 < 0 || d.MinJS < 0 || d.MinJS > 1 {
		errs = append(errs, errors.New("drift: min_mmd2 must be ≥ 0 and min_js within [0,1]"))
	}
	// A permutation p-value is at least 1/(1+B): below alpha only if B ≥ 1/alpha.
	if d.Alpha > 0 && float64(d.Permutations)+1 <= 1/d.Alpha {
		errs = append(errs, fmt.Errorf("drift.permutations %d: MMD can never reach p < alpha=%v; need more than %.0f", d.Permutations, d.Alpha, 1/d.Alpha-1))
	}
	if d.MinKS < 0 || d.MinKS > 1 || d.Projections < 1 || d.Projections > 256 || d.MMDFeatures < 0 {
		errs = append(errs, fmt.Errorf("drift: need min_ks within [0,1] (%v), 1 ≤ projections ≤ 256 (%d), mmd_features ≥ 0 (%d)",
			d.MinKS, d.Projections, d.MMDFeatures))
	}
	if d.SequentialARL < 0 || d.SequentialARL > 10000 {
		errs = append(errs, fmt.Errorf("drift.sequential_arl %d must be within [0, 10000]", d.SequentialARL))
	}
	if d.ReferenceMode != "first" && d.ReferenceMode != "rolling" {
		errs = append(errs, fmt.Errorf("drift.reference_mode %q must be first or rolling", d.ReferenceMode))
	}
	return errs
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
