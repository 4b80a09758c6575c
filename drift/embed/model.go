// Package embed embeds images with a DINOv2-contract ONNX model.
//
// The pipeline for one prediction is Sampler.Decide (hash of event_id, a
// per-source floor, an uncertainty boost and a rate limit, with the sample
// weight 1/p), Fetcher.Fetch (file:// below a root, or http(s) to
// allow-listed public hosts), Decode (JPEG/PNG/WebP with header limits, EXIF
// orientation, CMYK), Preprocess (the Hugging Face DINOv2 processor,
// bit-exact with PIL) and Model.Embed (ONNX Runtime, L2-normalised
// pooler_output rows). Stage runs it for the service with image work
// overlapped with inference; Backfill runs it over stored predictions, and
// Bench measures it against raw ONNX Runtime.
//
// Any ONNX file with the Hugging Face DINOv2 export contract works: input
// "pixel_values" float32 [B,3,224,224], outputs "last_hidden_state"
// [B,257,D] and "pooler_output" [B,D]. Open checks the contract and refuses
// anything else. To use the real model, export it once on a machine that can
// reach the Hugging Face hub, e.g.
//
//	pip install "optimum[exporters]"
//	optimum-cli export onnx --model facebook/dinov2-small --task feature-extraction dinov2-small-onnx/
//
// and point ModelConfig.Path at dinov2-small-onnx/model.onnx (D=384). Tests
// use models/dinov2-tiny-random.onnx from scripts/gen_model.py, which has
// the same contract and random weights. Embeddings are only comparable
// between models with the same Model.ID.
package embed

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Names fixed by the Hugging Face DINOv2 export.
const (
	inputName   = "pixel_values"
	hiddenName  = "last_hidden_state"
	poolerName  = "pooler_output"
	defaultSize = 224 // used when the export leaves height/width symbolic
	patchSize   = 14
)

// ErrClosed is returned by Embed after Close.
var ErrClosed = errors.New("embed: model closed")

// ModelConfig says which model to load and how to run it.
type ModelConfig struct {
	// Path of the .onnx file.
	Path string
	// ORTLibrary is the path of libonnxruntime.so (>= 1.24). The first Open
	// in a process fixes it, since ONNX Runtime can be initialised only once;
	// later Opens must pass the same path or "". Empty on the first Open lets
	// the dynamic loader find "libonnxruntime.so.1".
	ORTLibrary string
	// IntraOpThreads caps ONNX Runtime's threads per Run; 0 means ORT's
	// default (one per core).
	IntraOpThreads int
	// InputSize is the image side to feed a model whose export leaves height
	// and width symbolic (optimum's DINOv2 export interpolates its position
	// embeddings, so e.g. 518 works); 0 means 224. A model with a fixed
	// input size must be given 0 or exactly that size.
	InputSize int
	// AllowSpinning lets ORT's idle intra-op threads busy-wait for work.
	// Off by default: spinning threads steal the cores the image workers
	// (and other processes) need, which costs more than the wake-up latency
	// it saves.
	AllowSpinning bool
}

// Model is a loaded DINOv2-contract model. Its methods are safe for
// concurrent use; Close waits for running Embed calls.
type Model struct {
	mu   sync.RWMutex // read-held by Embed, write-held by Close
	sess *ort.DynamicAdvancedSession
	dim  int
	size int
	id   string
}

// ortEnv initialises ONNX Runtime once per process and remembers the result,
// so a failed load is reported the same way to every later Open.
var ortEnv struct {
	once sync.Once
	lib  string
	err  error
}

func initORT(lib string) error {
	ortEnv.once.Do(func() {
		ortEnv.lib = cmp.Or(lib, "libonnxruntime.so.1")
		ort.SetSharedLibraryPath(ortEnv.lib)
		ortEnv.err = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortEnv.err != nil {
		return fmt.Errorf("onnxruntime %s: %w", ortEnv.lib, ortEnv.err)
	}
	if lib != "" && lib != ortEnv.lib {
		return fmt.Errorf("onnxruntime already initialised from %s, cannot switch to %s", ortEnv.lib, lib)
	}
	return nil
}

// Open loads the model at cfg.Path, checks the DINOv2 contract, and runs one
// zero image through it so a model that cannot run fails here, at start-up,
// rather than on the first sampled image.
func Open(cfg ModelConfig) (*Model, error) {
	if err := initORT(cfg.ORTLibrary); err != nil {
		return nil, err
	}
	// Reading the bytes once means the ID hashes exactly what ORT loads.
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	name := filepath.Base(cfg.Path)
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	c, err := checkContract(ins, outs)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	size, err := pickSize(c.size, cfg.InputSize)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m := &Model{dim: c.dim, size: size, id: modelID(cfg.Path, data)}
	if m.sess, err = newSession(data, cfg.IntraOpThreads, cfg.AllowSpinning); err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	if err := m.probe(); err != nil {
		m.Close()
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	return m, nil
}

// pickSize reconciles the model's declared input side (0 when symbolic)
// with the configured one (0 when unset).
func pickSize(declared, configured int) (int, error) {
	switch {
	case declared > 0 && configured > 0 && declared != configured:
		return 0, fmt.Errorf("takes %dx%d images, the configuration crops to %d", declared, declared, configured)
	case declared > 0:
		return declared, nil
	case configured == 0:
		return defaultSize, nil
	case configured%patchSize != 0:
		return 0, fmt.Errorf("input size %d is not a multiple of the %d px patch", configured, patchSize)
	}
	return configured, nil
}

// modelID is "<base name>@<12 hex of sha256>": readable in dashboards, and
// different whenever the weights differ, even under the same file name.
func modelID(path string, data []byte) string {
	sum := sha256.Sum256(data)
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return base + "@" + hex.EncodeToString(sum[:])[:12]
}

func newSession(data []byte, threads int, spin bool) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
	}
	if !spin {
		if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, err
		}
	}
	// Only pooler_output is fetched: last_hidden_state is 257x larger and
	// would be copied out for nothing.
	return ort.NewDynamicAdvancedSessionWithONNXData(data, []string{inputName}, []string{poolerName}, opts)
}

// probe runs one all-zero image and learns D when the export left it
// symbolic, or confirms the declared D.
func (m *Model) probe() error {
	px := make([]float32, 3*m.size*m.size)
	in, err := ort.NewTensor(ort.NewShape(1, 3, int64(m.size), int64(m.size)), px)
	if err != nil {
		return err
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := m.sess.Run([]ort.Value{in}, outs); err != nil {
		return fmt.Errorf("test run on a %dx%d image: %w", m.size, m.size, err)
	}
	defer outs[0].Destroy()
	shape := outs[0].GetShape()
	if len(shape) != 2 || shape[0] != 1 || shape[1] <= 0 || (m.dim > 0 && int(shape[1]) != m.dim) {
		return fmt.Errorf("test run: %s has shape %v, want [1 %d]", poolerName, shape, m.dim)
	}
	m.dim = int(shape[1])
	return nil
}

// contract is what checkContract learns from the model's declared shapes.
type contract struct {
	size int // input height = width
	dim  int // D, 0 when only the probe run can tell
}

func checkContract(ins, outs []ort.InputOutputInfo) (contract, error) {
	in, err := findTensor(ins, "input", inputName, 4)
	if err != nil {
		return contract{}, err
	}
	if len(ins) != 1 {
		return contract{}, fmt.Errorf("has inputs %s, the contract has only %q", names(ins), inputName)
	}
	size, err := inputSize(in.Dimensions)
	if err != nil {
		return contract{}, err
	}
	pooler, err := findTensor(outs, "output", poolerName, 2)
	if err != nil {
		return contract{}, err
	}
	hidden, err := findTensor(outs, "output", hiddenName, 3)
	if err != nil {
		return contract{}, err
	}
	dim, err := outputDim(pooler.Dimensions, hidden.Dimensions, size)
	return contract{size: size, dim: dim}, err
}

// findTensor finds a float32 tensor of the given rank among list.
func findTensor(list []ort.InputOutputInfo, kind, name string, rank int) (ort.InputOutputInfo, error) {
	for _, v := range list {
		if v.Name != name {
			continue
		}
		if v.OrtValueType != ort.ONNXTypeTensor || v.DataType != ort.TensorElementDataTypeFloat {
			return v, fmt.Errorf("%s %q is %s, want a float32 tensor", kind, name, v.String())
		}
		if len(v.Dimensions) != rank {
			return v, fmt.Errorf("%s %q has shape %v, want rank %d", kind, name, v.Dimensions, rank)
		}
		return v, nil
	}
	return ort.InputOutputInfo{}, fmt.Errorf("%s %q missing (has %s)", kind, name, names(list))
}

func names(list []ort.InputOutputInfo) string {
	q := make([]string, len(list))
	for i, v := range list {
		q[i] = fmt.Sprintf("%q", v.Name)
	}
	return strings.Join(q, ", ")
}

// inputSize reads H=W from [B,3,H,W]; 0 when both are symbolic (optimum's
// export), in which case ModelConfig.InputSize decides.
func inputSize(d ort.Shape) (int, error) {
	if d[1] > 0 && d[1] != 3 {
		return 0, fmt.Errorf("input %q has %d channels, want 3 (shape %v)", inputName, d[1], d)
	}
	switch {
	case d[2] <= 0 && d[3] <= 0:
		return 0, nil // symbolic: chosen by ModelConfig.InputSize
	case d[2] > 0 && d[2] == d[3]:
		return int(d[2]), nil
	}
	return 0, fmt.Errorf("input %q has shape %v, want a square [B,3,S,S]", inputName, d)
}

// outputDim reads D from pooler_output [B,D] and last_hidden_state [B,T,D],
// and checks T = 1 + (S/14)^2 when declared.
func outputDim(pooler, hidden ort.Shape, size int) (int, error) {
	if want := 1 + (size/patchSize)*(size/patchSize); size > 0 && hidden[1] > 0 && int(hidden[1]) != want {
		return 0, fmt.Errorf("output %q has %d tokens, want %d (CLS + %dx%d patches of %d px)",
			hiddenName, hidden[1], want, size/patchSize, size/patchSize, patchSize)
	}
	pd, hd := int(pooler[1]), int(hidden[2])
	if pd > 0 && hd > 0 && pd != hd {
		return 0, fmt.Errorf("output %q width %d differs from %q width %d", poolerName, pd, hiddenName, hd)
	}
	return max(pd, hd, 0), nil
}

// Dim is the embedding width D.
func (m *Model) Dim() int { return m.dim }

// InputSize is the side of the square input the model takes (224); it must
// equal PreprocessConfig.Crop.
func (m *Model) InputSize() int { return m.size }

// ID identifies the model's exact weights as "<file base name>@<12 hex of the
// file's sha256>". Store it with every embedding: embeddings with different
// IDs live in different spaces and must never be compared.
func (m *Model) ID() string { return m.id }

// Embed runs n preprocessed images (n*3*S*S floats, CHW per image, as made by
// Preprocess) as one batch and returns n L2-normalised pooler_output rows.
// Cancelling ctx aborts a run in progress.
func (m *Model) Embed(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	per := 3 * m.size * m.size
	if n <= 0 || len(pixels) != n*per {
		return nil, fmt.Errorf("embed: %d floats for %d images, want %d each", len(pixels), n, per)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.sess == nil {
		return nil, ErrClosed
	}
	in, err := ort.NewTensor(ort.NewShape(int64(n), 3, int64(m.size), int64(m.size)), pixels)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(m.dim)))
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	defer out.Destroy()
	if err := m.run(ctx, in, out); err != nil {
		return nil, err
	}
	return normalizeRows(out.GetData(), n, m.dim)
}

// run executes the session, asking ORT to terminate the run if ctx ends
// meanwhile (a ViT-S batch can take seconds on two cores).
func (m *Model) run(ctx context.Context, in, out ort.Value) error {
	opts, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	defer opts.Destroy()
	var mu sync.Mutex // keeps Terminate from racing with Destroy
	done := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			opts.Terminate()
		}
	})
	err = m.sess.RunWithOptions([]ort.Value{in}, []ort.Value{out}, opts)
	mu.Lock()
	done = true
	mu.Unlock()
	stop()
	if cerr := ctx.Err(); err != nil && cerr != nil {
		return fmt.Errorf("embed: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	return nil
}

// normalizeRows copies the batch output into one allocation and scales each
// row to unit length, so cosine similarity is a dot product downstream.
func normalizeRows(flat []float32, n, dim int) ([][]float32, error) {
	buf := make([]float32, n*dim)
	rows := make([][]float32, n)
	for i := range rows {
		row := buf[i*dim : (i+1)*dim : (i+1)*dim]
		var ss float64
		for j, v := range flat[i*dim : (i+1)*dim] {
			row[j] = v
			ss += float64(v) * float64(v)
		}
		norm := math.Sqrt(ss)
		if !(norm > 0) || math.IsInf(norm, 0) {
			return nil, fmt.Errorf("embed: image %d has a degenerate embedding (norm %v)", i, norm)
		}
		inv := 1 / norm
		for j := range row {
			row[j] = float32(float64(row[j]) * inv)
		}
		rows[i] = row
	}
	return rows, nil
}

// Close releases the ONNX Runtime session after running Embed calls finish.
// The process-wide ORT environment stays up for other models.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return nil
	}
	err := m.sess.Destroy()
	m.sess = nil
	return err
}
