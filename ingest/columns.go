package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lookout-dev/lookout/internal/event"
)

// predictionColumns lists the predictions table's columns in insert order.
// Naming them keeps old binaries working after a migration adds a column.
const predictionColumns = "event_id, ts, ts_ms, model, model_version, source, task, image_uri, " +
	"predicted_class, confidence, margin, entropy, class_set, prob_values, box_classes, box_scores, " +
	"box_xyxy, latency_ms, arm, rollout_id, schema_version, ingested_at"

const insertPredictions = "INSERT INTO predictions (" + predictionColumns + ")"

// columns is one batch of predictions laid out column by column. Appending
// whole columns skips clickhouse-go's per-row reflection, which dominated
// the ingest profile.
type columns struct {
	eventID, model, version, source, task, uri, predicted, arm, rollout, classSet []string
	ts, ingested                                                                  []time.Time
	tsMS                                                                          []uint64
	confidence, margin, entropy                                                   []float32
	boxClasses                                                                    [][]string
	probValues, boxScores                                                         [][]float32
	boxXYXY                                                                       [][][]float32
	latency                                                                       []*float32
	schema                                                                        []uint8

	// The class list of the previous event with probs, and joined:
	// consecutive events of one model share it, so most skip the join.
	lastClasses []string
	lastSet     string

	// floats backs the rows' probability arrays and latencies: one
	// allocation per batch instead of two per event. Rows keep pointing
	// into an outgrown array when append moves on; nothing writes it again.
	floats []float32
}

func newColumns(n int) *columns {
	return &columns{
		floats:  make([]float32, 0, 13*n), // room for 12 classes and a latency per event
		eventID: make([]string, 0, n), model: make([]string, 0, n), version: make([]string, 0, n),
		source: make([]string, 0, n), task: make([]string, 0, n), uri: make([]string, 0, n),
		predicted: make([]string, 0, n), arm: make([]string, 0, n), rollout: make([]string, 0, n),
		ts: make([]time.Time, 0, n), ingested: make([]time.Time, 0, n), tsMS: make([]uint64, 0, n),
		confidence: make([]float32, 0, n), margin: make([]float32, 0, n), entropy: make([]float32, 0, n),
		classSet: make([]string, 0, n), boxClasses: make([][]string, 0, n),
		probValues: make([][]float32, 0, n), boxScores: make([][]float32, 0, n),
		boxXYXY: make([][][]float32, 0, n), latency: make([]*float32, 0, n), schema: make([]uint8, 0, n),
	}
}

// reset empties c for the next batch, keeping its capacity.
func (c *columns) reset() *columns {
	c.floats = c.floats[:0]
	for _, col := range []*[]string{&c.eventID, &c.model, &c.version, &c.source, &c.task, &c.uri,
		&c.predicted, &c.arm, &c.rollout, &c.classSet} {
		clear(*col)
		*col = (*col)[:0]
	}
	c.ts, c.ingested, c.tsMS = c.ts[:0], c.ingested[:0], c.tsMS[:0]
	c.confidence, c.margin, c.entropy, c.schema = c.confidence[:0], c.margin[:0], c.entropy[:0], c.schema[:0]
	clear(c.boxClasses)
	clear(c.probValues)
	clear(c.boxScores)
	clear(c.boxXYXY)
	clear(c.latency)
	c.boxClasses, c.probValues, c.boxScores = c.boxClasses[:0], c.probValues[:0], c.boxScores[:0]
	c.boxXYXY, c.latency = c.boxXYXY[:0], c.latency[:0]
	return c
}

func (c *columns) add(p *event.Prediction, now time.Time) {
	var (
		set    string
		values []float32
	)
	if len(p.Probs) > 0 {
		set, values = c.probsColumns(p.Probs)
	} else { // top_k lists are not sorted: store them as given, never reuse them
		var classes []string
		classes, values = topKColumns(p.TopK)
		set = strings.Join(classes, ",")
	}
	s := p.Scores()
	bc, bs, bx := flattenBoxes(p.Boxes)
	var latency *float32
	if p.LatencyMS != nil {
		c.floats = append(c.floats, float32(*p.LatencyMS))
		latency = &c.floats[len(c.floats)-1]
	}
	c.eventID = append(c.eventID, p.EventID)
	c.ts = append(c.ts, p.TS.UTC())
	c.tsMS = append(c.tsMS, uint64(p.TS.UnixMilli()))
	c.model = append(c.model, p.Model)
	c.version = append(c.version, p.ModelVersion)
	c.source = append(c.source, p.Source)
	c.task = append(c.task, p.Task)
	c.uri = append(c.uri, p.ImageURI)
	c.predicted = append(c.predicted, p.PredictedClass)
	c.confidence = append(c.confidence, float32(s.Confidence))
	c.margin = append(c.margin, float32(s.Margin))
	c.entropy = append(c.entropy, float32(s.Entropy))
	c.classSet = append(c.classSet, set)
	c.probValues = append(c.probValues, values)
	c.boxClasses = append(c.boxClasses, bc)
	c.boxScores = append(c.boxScores, bs)
	c.boxXYXY = append(c.boxXYXY, bx)
	c.latency = append(c.latency, latency)
	c.arm = append(c.arm, p.Arm)
	c.rollout = append(c.rollout, p.RolloutID)
	c.schema = append(c.schema, uint8(p.SchemaVersion))
	c.ingested = append(c.ingested, now)
}

func (c *columns) all() []any {
	return []any{c.eventID, c.ts, c.tsMS, c.model, c.version, c.source, c.task, c.uri,
		c.predicted, c.confidence, c.margin, c.entropy, c.classSet, c.probValues, c.boxClasses, c.boxScores,
		c.boxXYXY, c.latency, c.arm, c.rollout, c.schema, c.ingested}
}

// InsertPredictions writes one batch of predictions.
func InsertPredictions(ctx context.Context, conn driver.Conn, items []event.Prediction, now time.Time) error {
	batch, err := buildBatch(ctx, conn, items, now)
	if err != nil {
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert batch of %d predictions: %w", len(items), err)
	}
	return nil
}

// buildBatch lays items out as columns in a prepared insert, ready to send.
func buildBatch(ctx context.Context, conn driver.Conn, items []event.Prediction, now time.Time) (driver.Batch, error) {
	batch, err := conn.PrepareBatch(ctx, insertPredictions)
	if err != nil {
		return nil, fmt.Errorf("prepare insert of %d predictions: %w", len(items), err)
	}
	if err := appendPredictions(batch, items, now); err != nil {
		_ = batch.Abort()
		return nil, err
	}
	return batch, nil
}

// columnsPool keeps batches' column slices (22 of them, 15,000 rows each by
// default) for the next batch: clickhouse-go copies the values into its
// block on append, so the slices are free again right after.
var columnsPool sync.Pool

// appendPredictions appends items to batch as one block of columns.
func appendPredictions(batch driver.Batch, items []event.Prediction, now time.Time) error {
	cols, _ := columnsPool.Get().(*columns)
	if cols == nil || cap(cols.eventID) < len(items) {
		cols = newColumns(len(items))
	}
	defer func() { columnsPool.Put(cols.reset()) }()
	now = now.UTC().Truncate(time.Second)
	for i := range items {
		cols.add(&items[i], now)
	}
	for i, col := range cols.all() {
		if err := appendColumn(batch.Column(i), col); err != nil {
			return fmt.Errorf("append column %d of %d predictions: %w", i, len(items), err)
		}
	}
	return nil
}

// appendColumn appends a whole column. clickhouse-go appends a slice of
// arrays through reflection, boxing every element; handing it one typed row
// at a time takes its reflection-free path.
func appendColumn(col driver.BatchColumn, v any) error {
	switch rows := v.(type) {
	case [][]float32:
		return appendFloatRows(col, rows)
	case [][]string:
		return appendRows(col, rows)
	}
	return col.Append(v)
}

// appendFloatRows hands clickhouse-go each row as pointers to its values:
// given []float32 it boxes every element into an interface (an allocation
// per probability), given []*float32 it boxes nothing.
func appendFloatRows(col driver.BatchColumn, rows [][]float32) error {
	var ptrs []*float32
	for _, r := range rows {
		ptrs = ptrs[:0]
		for i := range r {
			ptrs = append(ptrs, &r[i])
		}
		if err := col.AppendRow(ptrs); err != nil {
			return err
		}
	}
	return nil
}

func appendRows[T any](col driver.BatchColumn, rows []T) error {
	for _, r := range rows {
		if err := col.AppendRow(r); err != nil {
			return err
		}
	}
	return nil
}

// probsColumns returns the class set and values of a sorted distribution. The class list and its joined form are reused while the
// classes equal the previous event's, as they do for consecutive events of
// one model; interned names usually make each comparison a pointer check.
func (c *columns) probsColumns(probs event.Probs) (set string, values []float32) {
	start := len(c.floats)
	same := len(probs) == len(c.lastClasses)
	for i, e := range probs {
		same = same && e.Class == c.lastClasses[i]
		c.floats = append(c.floats, float32(e.Score))
	}
	values = c.floats[start:len(c.floats):len(c.floats)]
	if !same {
		classes := make([]string, len(probs))
		for i, e := range probs {
			classes[i] = e.Class
		}
		c.lastClasses, c.lastSet = classes, strings.Join(classes, ",")
	}
	return c.lastSet, values
}

// topKColumns stores a top_k list as parallel arrays in the order given.
func topKColumns(top []event.ClassScore) ([]string, []float32) {
	classes := make([]string, len(top))
	values := make([]float32, len(top))
	for i, cs := range top {
		classes[i], values[i] = cs.Class, float32(cs.Score)
	}
	return classes, values
}

func flattenBoxes(boxes []event.Box) ([]string, []float32, [][]float32) {
	classes := make([]string, len(boxes))
	scores := make([]float32, len(boxes))
	xyxy := make([][]float32, len(boxes))
	for i, b := range boxes {
		classes[i], scores[i] = b.Class, float32(b.Score)
		xyxy[i] = []float32{float32(b.XYXY[0]), float32(b.XYXY[1]), float32(b.XYXY[2]), float32(b.XYXY[3])}
	}
	return classes, scores, xyxy
}
