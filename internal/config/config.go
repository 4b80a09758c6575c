// Package config loads lookout's single YAML configuration file, applies
// LOOKOUT_* environment overrides and validates the result at start-up, so a
// mistake is reported once, clearly, before any component starts.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/simulate"
)

// Config is the whole service configuration. Every field has a default that
// works for the local demo (see Default).
type Config struct {
	Kafka      Kafka           `yaml:"kafka"`
	ClickHouse ClickHouse      `yaml:"clickhouse"`
	HTTP       HTTP            `yaml:"http"`
	Ingest     Ingest          `yaml:"ingest"`
	Embed      Embed           `yaml:"embed"`
	Drift      Drift           `yaml:"drift"`
	DevKafka   DevKafka        `yaml:"devkafka"`
	Simulate   simulate.Config `yaml:"simulate"`
	Auth       Auth            `yaml:"auth"`
	Canary     Canary          `yaml:"canary"`
	Learning   ActiveLearning  `yaml:"activelearning"`
	Log        Log             `yaml:"log"`
}

// Auth configures the API tokens of lookout's HTTP APIs (router admin,
// rollouts, the labelling queue). Tokens are stored as SHA-256 hashes.
type Auth struct {
	Tokens []auth.Token `yaml:"tokens"`
}

// TLS configures a client TLS connection. Files are PEM.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Kafka configures the brokers and topics.
type Kafka struct {
	Brokers          []string `yaml:"brokers"`
	PredictionsTopic string   `yaml:"predictions_topic"`
	DLQTopic         string   `yaml:"dlq_topic"`
	LabelsTopic      string   `yaml:"labels_topic"`
	// GroupID is the consumer group of the ingest stage; the embed stage uses
	// GroupID + "-embed" so each stage commits its own progress.
	GroupID  string `yaml:"group_id"`
	ClientID string `yaml:"client_id"`
	// CreateTopics makes the service create missing topics with Partitions
	// partitions at start; turn it off where topics are managed elsewhere.
	CreateTopics bool `yaml:"create_topics"`
	Partitions   int  `yaml:"partitions"`
	// LeaderTopic carries no data: membership of a group on it elects the
	// one instance that runs work meant to run once (the drift job).
	LeaderTopic string `yaml:"leader_topic"`
	TLS         TLS    `yaml:"tls"`
	SASL        SASL   `yaml:"sasl"`
}

// SASL configures broker authentication. The password is read from
// PasswordFile when set, so it need not appear in the YAML or the environment.
type SASL struct {
	// Mechanism is "", "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// ClickHouse configures the database connection.
type ClickHouse struct {
	Addr         []string      `yaml:"addr"`
	Database     string        `yaml:"database"`
	Username     string        `yaml:"username"`
	Password     Secret        `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	TLS          TLS           `yaml:"tls"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
}

// HTTP configures the operational endpoint (/metrics, /healthz, /readyz).
type HTTP struct {
	Listen string `yaml:"listen"`
}

// Ingest configures the predictions consumer.
type Ingest struct {
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// BatchesPerInsert is how many full batches of a backlog one INSERT may
	// hold (each is held in memory until the INSERT ends): fewer, larger
	// parts for ClickHouse to write and merge.
	BatchesPerInsert int `yaml:"batches_per_insert"`
	// Limits refuse absurd events (sizes, timestamps) to the dead-letter topic.
	Limits event.Limits `yaml:"limits"`
}

// Embed configures image sampling and the embedding model.
type Embed struct {
	Enabled    bool   `yaml:"enabled"`
	ModelPath  string `yaml:"model_path"`
	ORTLibrary string `yaml:"ort_library"`
	// IntraOpThreads is ONNX Runtime's thread count per run; Inferers runs
	// that many model calls at once on the one session; InferBatch images
	// go to each call.
	IntraOpThreads int    `yaml:"intra_op_threads"`
	Inferers       int    `yaml:"inferers"`
	InferBatch     int    `yaml:"infer_batch"`
	ImageRoot      string `yaml:"image_root"`
	// SampleRate is the base share of events embedded (hash of event_id).
	SampleRate float64 `yaml:"sample_rate"`
	// SampleFloor is the number of embeddings every model × source should
	// get per SampleWindow, raising its rate when its volume is low (0: off).
	SampleFloor  int           `yaml:"sample_floor"`
	SampleWindow time.Duration `yaml:"sample_window"`
	// Events with confidence below UncertainBelow are sampled
	// UncertaintyBoost times more often (1: off); weights stay unbiased.
	UncertainBelow   float64 `yaml:"uncertain_below"`
	UncertaintyBoost float64 `yaml:"uncertainty_boost"`
	// MaxPerSecond is a hard cap on sampled images per second (0: none),
	// with a token bucket of depth Burst.
	MaxPerSecond  float64       `yaml:"max_per_second"`
	Burst         int           `yaml:"burst"`
	Workers       int           `yaml:"workers"`
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	MaxImageBytes int64         `yaml:"max_image_bytes"`
	// ResizeShortest and Crop set the preprocessing (256/224 for
	// dinov2 at 224; e.g. 586/518 at 518); Crop must equal the model's input.
	ResizeShortest int `yaml:"resize_shortest"`
	Crop           int `yaml:"crop"`
	// HTTPAllowHosts lists the hosts (host or host:port) http(s) image URIs
	// may name; empty refuses every http(s) URI.
	HTTPAllowHosts []string `yaml:"http_allow_hosts"`
	// HTTPAllowPrivate permits loopback, private and link-local addresses.
	HTTPAllowPrivate bool          `yaml:"http_allow_private"`
	FetchTimeout     time.Duration `yaml:"fetch_timeout"`
}

// Drift configures the periodic drift job.
type Drift struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
	// Window is the length of the current window, ending now.
	Window time.Duration `yaml:"window"`
	// ReferenceDuration is the length of the reference window, which starts at
	// the first event seen for the scope unless a reference is pinned.
	ReferenceDuration time.Duration `yaml:"reference_duration"`
	MinSamples        int           `yaml:"min_samples"`
	MaxSamples        int           `yaml:"max_samples"`
	Permutations      int           `yaml:"permutations"`
	Alpha             float64       `yaml:"alpha"`
	// MinMMD2 and MinJS are effect-size floors: significance alone never
	// flags drift, so large windows do not alarm on trivial differences.
	MinMMD2 float64 `yaml:"min_mmd2"`
	MinJS   float64 `yaml:"min_js"`
	// MinKS is the floor on the Kolmogorov–Smirnov D of the score,
	// probability and projection tests.
	MinKS float64 `yaml:"min_ks"`
	// Projections is the number of random projections of the embeddings
	// tested with KS.
	Projections int `yaml:"projections"`
	// MMDFeatures > 0 uses the random-Fourier-feature MMD with that many
	// features instead of the exact kernel test (for large windows).
	MMDFeatures int `yaml:"mmd_features"`
	// ReferenceMode is "first" (the first reference_duration of a scope's
	// data) or "rolling" (the reference_duration just before the current
	// window). A reference pinned with `lookout drift reference pin` wins.
	ReferenceMode string `yaml:"reference_mode"`
	// SequentialARL > 0 adds a CUSUM over runs per scope × test, with its
	// threshold set so that, without drift, an alarm comes on average once
	// every SequentialARL runs. 0 turns it off.
	SequentialARL int `yaml:"sequential_arl"`
}

// DevKafka configures the development broker (lookout devkafka).
type DevKafka struct {
	Listen     string `yaml:"listen"`
	DataDir    string `yaml:"data_dir"`
	Partitions int    `yaml:"partitions"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Secret is a string that never prints: logging a config cannot leak it.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Default returns the configuration that runs the local demo.
func Default() Config {
	c := Config{
		Kafka: Kafka{
			Brokers:          []string{"127.0.0.1:19092"},
			PredictionsTopic: "predictions",
			DLQTopic:         "predictions-dlq",
			LabelsTopic:      "labels",
			GroupID:          "lookout",
			ClientID:         "lookout",
			CreateTopics:     true,
			LeaderTopic:      "lookout-leader",
			Partitions:       3,
		},
		ClickHouse: ClickHouse{
			Addr:        []string{"127.0.0.1:19000"},
			Database:    "lookout",
			Username:    "default",
			DialTimeout: 5 * time.Second,
		},
		HTTP:   HTTP{Listen: "127.0.0.1:9464"},
		Ingest: Ingest{BatchSize: 15000, FlushInterval: time.Second, BatchesPerInsert: 4, Limits: event.DefaultLimits()},
		Embed: Embed{
			Enabled:          true,
			ModelPath:        "models/dinov2-tiny-random.onnx",
			ORTLibrary:       ".lookout/ort/libonnxruntime.so.1",
			IntraOpThreads:   1,
			Inferers:         1,
			InferBatch:       1,
			ImageRoot:        ".lookout/images",
			SampleRate:       0.25,
			SampleFloor:      20,
			SampleWindow:     time.Minute,
			UncertainBelow:   0.5,
			UncertaintyBoost: 1,
			Workers:          2,
			BatchSize:        256,
			FlushInterval:    time.Second,
			MaxImageBytes:    20 << 20,
			ResizeShortest:   256,
			Crop:             224,
			FetchTimeout:     10 * time.Second,
		},
		Drift: Drift{
			Enabled:           true,
			Interval:          15 * time.Second,
			Window:            45 * time.Second,
			ReferenceDuration: time.Minute,
			MinSamples:        40,
			MaxSamples:        300,
			Permutations:      500,
			Alpha:             0.01,
			MinMMD2:           0.02,
			MinJS:             0.1,
			MinKS:             0.2,
			Projections:       16,
			ReferenceMode:     "first",
		},
		DevKafka: DevKafka{Listen: "127.0.0.1:19092", DataDir: ".lookout/kafka", Partitions: 3},
		Log:      Log{Level: "info", Format: "text"},
	}
	c.Canary = defaultCanary()
	c.Learning = defaultActiveLearning()
	c.Simulate = simulate.DefaultConfig(c.Embed.ImageRoot)
	c.Simulate.ShiftAfter = 90 * time.Second
	return c
}

// Load reads the YAML file at path (if path is non-empty) over the defaults,
// applies environment overrides from env (typically os.Environ()), resolves
// secret files and validates the result.
func Load(path string, env []string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// io.EOF means an empty file: all defaults.
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, env); err != nil {
		return Config{}, err
	}
	if err := c.resolveSecrets(); err != nil {
		return Config{}, err
	}
	c.Simulate.Defaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

func (c *Config) resolveSecrets() error {
	read := func(file string, dst *Secret) error {
		if file == "" {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		*dst = Secret(strings.TrimRight(string(b), "\r\n"))
		return nil
	}
	if err := read(c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password); err != nil {
		return fmt.Errorf("kafka.sasl: %w", err)
	}
	if err := read(c.ClickHouse.PasswordFile, &c.ClickHouse.Password); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// MarshalYAML keeps secrets out of printed configurations.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// YAML renders c as the YAML file that would configure it, secrets redacted.
func (c Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}
