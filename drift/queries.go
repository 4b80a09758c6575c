package drift

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Where the work happens: counts per class and label agreement aggregate
// over the whole window in ClickHouse; per-event scores, probabilities and
// embeddings are pulled as a bounded, hash-ordered subsample of at most
// max_samples rows, which is all a KS or kernel test needs.
//
// A scope's reference and current window are read together: one query per
// kind of data returns both sides, tagged. The primary key orders a scope's
// rows by hour and event_id, not by time, so a window of a few minutes reads
// the granules of its whole hour anyway; reading both windows in one pass
// halves those scans.

type scopeStart struct {
	Scope
	first time.Time
}

// scopeCache remembers every scope the job has seen with its first
// prediction. Listing scopes with min(ts) reads three string columns of
// every row of the table (0.5–1 s per 10M rows here), while the first
// prediction of a scope never changes: so the job scans the whole table
// once, and afterwards only looks for new scopes, in the rows since one
// window before its previous look, at most once per reference_duration (a
// new scope cannot be tested before its reference window has filled
// anyway).
type scopeCache struct {
	mu      sync.Mutex
	first   map[Scope]time.Time
	scanned time.Time // the now of the last look; zero before the first
}

// scopes lists every model × version × source with its first prediction,
// as of now.
func (j *Job) scopes(ctx context.Context, now time.Time) ([]scopeStart, error) {
	c := &j.known
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.first == nil || now.Before(c.scanned):
		// First pass, or a pass back in time (lookout drift run -at):
		// everything.
		first, err := listScopes(ctx, j.conn, time.Time{})
		if err != nil {
			return nil, err
		}
		c.first, c.scanned = first, now
	case now.Sub(c.scanned) >= max(j.cfg.ReferenceDuration, j.cfg.Interval):
		found, err := listScopes(ctx, j.conn, c.scanned.Add(-j.cfg.Window))
		if err != nil {
			return nil, err
		}
		for sc, t := range found {
			if old, ok := c.first[sc]; !ok || t.Before(old) {
				c.first[sc] = t
			}
		}
		c.scanned = now
	}
	out := make([]scopeStart, 0, len(c.first))
	for sc, t := range c.first {
		out = append(out, scopeStart{Scope: sc, first: t})
	}
	slices.SortFunc(out, func(a, b scopeStart) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// listScopes returns the scopes with predictions from since on (all when
// since is zero) and their first prediction in that range.
func listScopes(ctx context.Context, conn driver.Conn, since time.Time) (map[Scope]time.Time, error) {
	where, args := "", []any(nil)
	if !since.IsZero() {
		where, args = "WHERE ts >= toDateTime(?)", []any{since.Unix()}
	}
	rows, err := conn.Query(ctx, `SELECT model, model_version, source, min(ts) FROM predictions `+where+`
		GROUP BY model, model_version, source`, args...)
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	defer rows.Close()
	out := make(map[Scope]time.Time)
	for rows.Next() {
		var sc Scope
		var t time.Time
		if err := rows.Scan(&sc.Model, &sc.Version, &sc.Source, &t); err != nil {
			return nil, fmt.Errorf("scan scope: %w", err)
		}
		out[sc] = t
	}
	return out, rows.Err()
}

// side is one window of one scope: what a Sample is read from.
type side struct {
	Scope
	Window
}

// cond is the filter of one side; side.args are its arguments.
const cond = "(model = ? AND model_version = ? AND source = ? AND ts >= toDateTime(?) AND ts < toDateTime(?))"

// timeCond is the time part of cond alone; Window.args are its arguments.
const timeCond = "(ts >= toDateTime(?) AND ts < toDateTime(?))"

func (s side) args() []any { return scopeArgs(s.Scope, s.Window) }

func (w Window) args() []any { return []any{w.From.Unix(), w.To.Unix()} }

func scopeArgs(sc Scope, w Window) []any {
	return []any{sc.Model, sc.Version, sc.Source, w.From.Unix(), w.To.Unix()}
}

// sides are the windows one query reads, at most two. Rows are tagged with
// the index of their side, so the sides must not share rows: overlapping
// windows of one scope are read one query each (see readSamples).
type sides []side

func (ss sides) oneScope() bool { return len(ss) == 1 || ss[0].Scope == ss[1].Scope }

// filter selects the rows of every side. When the sides share their scope
// (the usual case), the scope is compared once per row, not once per side:
// the string comparisons are a good part of the per-row cost.
func (ss sides) filter() (string, []any) {
	parts := make([]string, len(ss))
	var args []any
	if ss.oneScope() {
		args = []any{ss[0].Model, ss[0].Version, ss[0].Source}
		for i, s := range ss {
			parts[i] = timeCond
			args = append(args, s.Window.args()...)
		}
		return "model = ? AND model_version = ? AND source = ? AND (" + strings.Join(parts, " OR ") + ")", args
	}
	for i, s := range ss {
		parts[i] = cond
		args = append(args, s.args()...)
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

// tag is an expression giving a row's side index; filter must hold.
func (ss sides) tag() (string, []any) {
	switch {
	case len(ss) == 1:
		return "toUInt8(0)", nil
	case ss.oneScope():
		return "toUInt8(if(" + timeCond + ", 0, 1))", ss[0].Window.args()
	}
	return "toUInt8(if(" + cond + ", 0, 1))", ss[0].args()
}

// overlap reports whether a row could belong to both sides.
func overlap(a, b side) bool {
	return a.Scope == b.Scope && a.From.Before(b.To) && b.From.Before(a.To)
}

// readSamples reads the reference and the current window of a scope;
// embeddings only from embedder (none when it is empty), because vectors of
// different embedders are not comparable; label agreement only when labels
// is set.
func (j *Job) readSamples(ctx context.Context, ref, cur side, embedder string, labels bool) (*Sample, *Sample, error) {
	if overlap(ref, cur) {
		r, err := j.read(ctx, sides{ref}, embedder, labels)
		if err != nil {
			return nil, nil, err
		}
		c, err := j.read(ctx, sides{cur}, embedder, labels)
		if err != nil {
			return nil, nil, err
		}
		return r[0], c[0], nil
	}
	s, err := j.read(ctx, sides{ref, cur}, embedder, labels)
	if err != nil {
		return nil, nil, err
	}
	return s[0], s[1], nil
}

// read fills one Sample per side.
func (j *Job) read(ctx context.Context, ss sides, embedder string, labels bool) ([]*Sample, error) {
	out := make([]*Sample, len(ss))
	for i := range out {
		out[i] = &Sample{Classes: map[string]float64{}}
	}
	if err := j.timed(ctx, "class_counts", ss, func() error { return classCounts(ctx, j.conn, ss, out) }); err != nil {
		return nil, err
	}
	if err := j.timed(ctx, "prediction_sample", ss, func() error { return predictionRows(ctx, j.conn, ss, out, j.cfg.MaxSamples) }); err != nil {
		return nil, err
	}
	if labels {
		if err := j.timed(ctx, "label_agreement", ss, func() error { return labelAgreement(ctx, j.conn, ss, out) }); err != nil {
			return nil, err
		}
	}
	if embedder == "" {
		for _, s := range out {
			s.EmbeddingNote = "no embeddings for this scope"
		}
		return out, nil
	}
	if err := j.timed(ctx, "embedding_sample", ss, func() error { return embeddings(ctx, j.conn, ss, embedder, out, j.cfg.MaxSamples) }); err != nil {
		return nil, err
	}
	for i, s := range out {
		if len(s.Embeddings) == 0 {
			s.EmbeddingNote = fmt.Sprintf("no embeddings from embedder %s in %s (embedders are never compared across)", embedder, ss[i].Scope)
		}
	}
	return out, nil
}

// timed runs one query and logs how long it took: the pass time is the sum
// of these, so they are what to look at when a pass gets slow.
func (j *Job) timed(_ context.Context, name string, ss sides, f func() error) error {
	start := time.Now()
	err := f()
	j.log.Debug("drift query", "query", name, "scope", ss[len(ss)-1].Scope.String(), "sides", len(ss), "took", time.Since(start))
	return err
}

// classCounts counts distinct events per predicted class of each side: a
// redelivered event must count once even before the table merges its
// copies away. Hashing a million event ids into per-class sets is the most
// expensive thing a pass does, and it is rarely needed, because
// ReplacingMergeTree removes copies when it merges: a side whose rows all
// sit in one merged part (level > 0) has none, and its plain row counts are
// exact. Other sides (fresh, unmerged data) are checked with one distinct
// count per side, and only a side that really holds copies is counted
// distinctly per class.
func classCounts(ctx context.Context, conn driver.Conn, ss sides, out []*Sample) error {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	rows, err := conn.Query(ctx, `SELECT `+tag+` AS side, predicted_class, _part, count() FROM predictions
		WHERE `+filter+` GROUP BY side, predicted_class, _part`, append(targs, fargs...)...)
	if err != nil {
		return fmt.Errorf("class counts: %w", err)
	}
	defer rows.Close()
	parts := make([]map[string]bool, len(ss))
	rowCount := make([]uint64, len(ss))
	for i := range parts {
		parts[i] = map[string]bool{}
	}
	for rows.Next() {
		var i uint8
		var class, part string
		var n uint64
		if err := rows.Scan(&i, &class, &part, &n); err != nil {
			return fmt.Errorf("scan class counts: %w", err)
		}
		out[i].Classes[class] += float64(n)
		parts[i][part] = true
		rowCount[i] += n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("class counts: %w", err)
	}
	var unsure sides
	var at []int
	for i := range ss {
		if rowCount[i] > 0 && !oneMergedPart(parts[i]) {
			unsure, at = append(unsure, ss[i]), append(at, i)
		}
	}
	if len(unsure) == 0 {
		return nil
	}
	distinct, err := distinctCounts(ctx, conn, unsure)
	if err != nil {
		return err
	}
	var copies sides
	var copyAt []int
	for k, i := range at {
		if distinct[k] != rowCount[i] {
			copies, copyAt = append(copies, ss[i]), append(copyAt, i)
		}
	}
	if len(copies) == 0 {
		return nil
	}
	exact := make([]*Sample, len(copies))
	for k := range exact {
		exact[k] = &Sample{Classes: map[string]float64{}}
	}
	if err := distinctClassCounts(ctx, conn, copies, exact); err != nil {
		return err
	}
	for k, i := range copyAt {
		out[i].Classes = exact[k].Classes
	}
	return nil
}

// oneMergedPart reports whether parts is a single part written by a merge
// (level > 0 in its name partition_min_max_level[_mutation]), which
// ReplacingMergeTree guarantees to hold each event once.
func oneMergedPart(parts map[string]bool) bool {
	if len(parts) != 1 {
		return false
	}
	for name := range parts {
		f := strings.Split(name, "_")
		if len(f) < 4 {
			return false
		}
		level, err := strconv.Atoi(f[3])
		return err == nil && level > 0
	}
	return false
}

// distinctCounts counts the distinct events of each side (by 64-bit hash of
// the id; a collision among a window's ids is vanishingly rare).
func distinctCounts(ctx context.Context, conn driver.Conn, ss sides) ([]uint64, error) {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	rows, err := conn.Query(ctx, `SELECT `+tag+` AS side, uniqExact(cityHash64(event_id)) FROM predictions
		PREWHERE `+filter+` GROUP BY side`, append(targs, fargs...)...)
	if err != nil {
		return nil, fmt.Errorf("distinct events: %w", err)
	}
	defer rows.Close()
	out := make([]uint64, len(ss))
	for rows.Next() {
		var i uint8
		var n uint64
		if err := rows.Scan(&i, &n); err != nil {
			return nil, fmt.Errorf("scan distinct events: %w", err)
		}
		out[i] = n
	}
	return out, rows.Err()
}

// distinctClassCounts counts distinct events per predicted class of each
// side, for windows that hold redelivered copies.
func distinctClassCounts(ctx context.Context, conn driver.Conn, ss sides, out []*Sample) error {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	rows, err := conn.Query(ctx, `SELECT `+tag+` AS side, predicted_class, uniqExact(cityHash64(event_id)) FROM predictions
		WHERE `+filter+` GROUP BY side, predicted_class`, append(targs, fargs...)...)
	if err != nil {
		return fmt.Errorf("distinct class counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i uint8
		var class string
		var n uint64
		if err := rows.Scan(&i, &class, &n); err != nil {
			return fmt.Errorf("scan distinct class counts: %w", err)
		}
		out[i].Classes[class] = float64(n)
	}
	return rows.Err()
}

// sampleSlack is how many more rows than the sample size the hash threshold
// of predictionRows lets through on average: with n distinct events, the
// number below the threshold is about Poisson(slack·limit + 30), so coming
// up short (and paying for the fallback query) practically never happens.
const sampleSlack = 1.5

// hashThreshold returns the largest cityHash64 value that lets through about
// want of n distinct events (all of them when n ≤ want).
func hashThreshold(want float64, n int) uint64 {
	t := want / float64(n) * (1 << 64)
	if n <= 0 || t >= 1<<64 {
		return math.MaxUint64
	}
	return uint64(t)
}

// predictionRows reads each side's subsample of up to limit predictions, a
// deterministic pseudo-random one: the distinct events with the smallest
// cityHash64(event_id). Instead of sorting the window by hash and then
// reading the chosen ids' rows in a second scan, a threshold computed from
// the window's event count (classCounts ran first) lets about 1.5·limit
// rows through in one PREWHERE scan: half the ClickHouse CPU of the sort
// and IN of both windows. The sample is the same as a full sort would give
// whenever at least limit events pass; when fewer do (new rows, a tiny
// count), that side is read again by full sort.
func predictionRows(ctx context.Context, conn driver.Conn, ss sides, out []*Sample, limit int) error {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	thr := make([]uint64, len(ss))
	for i, s := range out {
		thr[i] = hashThreshold(sampleSlack*float64(limit)+30, total(s.Classes))
	}
	thrExpr, thrArgs := "toUInt64(?)", []any{thr[0]}
	if len(ss) == 2 {
		t, a := ss.tag()
		thrExpr, thrArgs = "if("+t+" = 0, toUInt64(?), toUInt64(?))", append(a, thr[0], thr[1])
	}
	args := append(append(append([]any{}, targs...), fargs...), thrArgs...)
	got, err := scanRows(ctx, conn, `SELECT `+tag+` AS side, cityHash64(event_id) AS h, `+sampleColumns+`
		FROM predictions PREWHERE `+filter+` AND cityHash64(event_id) <= `+thrExpr+`
		ORDER BY side, h`, args, len(ss), limit)
	if err != nil {
		return err
	}
	for i, s := range out {
		if len(got[i]) < limit && len(got[i]) < total(s.Classes) {
			// The threshold let too few through: sort the whole window.
			one := sides{ss[i]}
			f, a := one.filter()
			all, err := scanRows(ctx, conn, `SELECT toUInt8(0) AS side, cityHash64(event_id) AS h, `+sampleColumns+`
				FROM predictions PREWHERE `+f+` AND event_id IN
					(SELECT event_id FROM predictions WHERE `+f+` ORDER BY cityHash64(event_id) LIMIT ?)
				ORDER BY h`, append(append(a, a...), 2*limit), 1, limit)
			if err != nil {
				return err
			}
			got[i] = all[0]
		}
		s.Rows = got[i]
	}
	return nil
}

// sampleColumns are the columns of a subsample row, after side and hash.
// class_set is the row's class list as one string ("a,b,c"), split here
// once per distinct list rather than by the server for every row read
// (prob_classes is computed from it).
const sampleColumns = "event_id, predicted_class, confidence, entropy, margin, class_set, prob_values"

// scanRows reads prediction rows ordered by side and hash into one slice per
// side, keeping the first limit distinct events of each (a redelivered
// event has the same hash, so its copies are adjacent).
func scanRows(ctx context.Context, conn driver.Conn, query string, args []any, n, limit int) ([][]Row, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read predictions: %w", err)
	}
	defer rows.Close()
	out := make([][]Row, n)
	lists := map[string][]string{} // class_set → its classes, split once
	for rows.Next() {
		var side uint8
		var h uint64
		var r Row
		var conf, ent, margin float32
		var set string
		var probs []float32
		if err := rows.Scan(&side, &h, &r.EventID, &r.Class, &conf, &ent, &margin, &set, &probs); err != nil {
			return nil, fmt.Errorf("scan prediction: %w", err)
		}
		got := out[side]
		if len(got) >= limit || len(got) > 0 && got[len(got)-1].EventID == r.EventID {
			continue
		}
		r.Confidence, r.Entropy, r.Margin = float64(conf), float64(ent), float64(margin)
		classes, ok := lists[set]
		if !ok {
			classes = strings.Split(set, ",")
			lists[set] = classes
		}
		r.Probs = probsByClass(classes, probs)
		out[side] = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read predictions: %w", err)
	}
	return out, nil
}

// probsByClass pairs class names with probabilities; nil when they do not
// match (no probabilities, or a row without its class list).
func probsByClass(classes []string, probs []float32) map[string]float64 {
	if len(classes) != len(probs) || len(probs) == 0 {
		return nil
	}
	m := make(map[string]float64, len(classes))
	for i, c := range classes {
		m[c] = float64(probs[i])
	}
	return m
}

// anyLabels reports whether the labels table holds any label: most
// deployments label few or no images, and without any the per-scope label
// join (about a fifth of the ClickHouse CPU of a pass here) is skipped.
// It stops at the first label found.
func anyLabels(ctx context.Context, conn driver.Conn) (bool, error) {
	rows, err := conn.Query(ctx, "SELECT 1 FROM labels WHERE label != '' LIMIT 1")
	if err != nil {
		return false, fmt.Errorf("look for labels: %w", err)
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}

// labelAgreement counts labelled events of each side and those whose
// prediction matches the label (any annotator's label when several exist).
// Labels are written after the prediction, so only labels from a day before
// the earliest window on are joined; distinct counts absorb redelivered
// predictions. The join is on the ids' 64-bit hashes: a quarter cheaper
// than on the strings.
func labelAgreement(ctx context.Context, conn driver.Conn, ss sides, out []*Sample) error {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	from := ss[0].From
	for _, s := range ss {
		if s.From.Before(from) {
			from = s.From
		}
	}
	args := append(append(append([]any{}, targs...), fargs...), from.Add(-24*time.Hour).Unix())
	rows, err := conn.Query(ctx, `SELECT side, uniqExact(h), uniqExactIf(h, pred = truth) FROM
		(SELECT `+tag+` AS side, cityHash64(event_id) AS h, predicted_class AS pred FROM predictions WHERE `+filter+`)
		ANY INNER JOIN
		(SELECT cityHash64(event_id) AS h, any(label) AS truth FROM labels
			WHERE label != '' AND ts >= toDateTime(?) GROUP BY h)
		USING h GROUP BY side`, args...)
	if err != nil {
		return fmt.Errorf("label agreement: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i uint8
		var n, k uint64
		if err := rows.Scan(&i, &n, &k); err != nil {
			return fmt.Errorf("scan label agreement: %w", err)
		}
		out[i].Labeled, out[i].Correct = int(n), int(k)
	}
	return rows.Err()
}

// embeddings reads up to limit vectors per side with their event ids.
// The embed stage may sample some events more often than others (a floor
// for quiet sources, a boost for uncertain events) and stores each row's
// weight = 1/inclusion probability; the subsample here undoes that with
// weighted sampling without replacement (Efraimidis–Spirakis: the largest
// keys u^(1/weight), u a hash of event_id), so both windows stand for their
// traffic, not for the sampling policy. Equal weights give a plain
// hash-ordered subsample. The ids are chosen first from two light columns;
// the 384-float vectors are read for those ids only.
func embeddings(ctx context.Context, conn driver.Conn, ss sides, embedder string, out []*Sample, limit int) error {
	tag, targs := ss.tag()
	filter, fargs := ss.filter()
	const key = "pow((cityHash64(event_id) + 1) / 18446744073709551616, 1 / greatest(sample_weight, 1e-6))"
	where := append([]any{embedder}, fargs...)
	var args []any
	for _, a := range [][]any{targs, where, where, targs, {limit}, targs} {
		args = append(args, a...)
	}
	rows, err := conn.Query(ctx, `SELECT `+tag+` AS side, `+key+` AS k, event_id, embedding FROM embeddings
		PREWHERE embedder = ? AND `+filter+` AND event_id IN
			(SELECT event_id FROM embeddings WHERE embedder = ? AND `+filter+`
			 ORDER BY `+tag+`, `+key+` DESC LIMIT ? BY `+tag+`)
		ORDER BY side, k DESC`, args...)
	if err != nil {
		return fmt.Errorf("read embeddings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i uint8
		var k float64
		var id string
		var v []float32
		if err := rows.Scan(&i, &k, &id, &v); err != nil {
			return fmt.Errorf("scan embedding: %w", err)
		}
		s := out[i]
		if n := len(s.EmbeddingIDs); n >= limit || n > 0 && s.EmbeddingIDs[n-1] == id {
			continue // a redelivered copy
		}
		s.EmbeddingIDs = append(s.EmbeddingIDs, id)
		s.Embeddings = append(s.Embeddings, v)
	}
	return rows.Err()
}

func insertReports(ctx context.Context, conn driver.Conn, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_reports (run_at, model, model_version, source, embedder,
		test, status, statistic, p_value, effect, min_effect, alpha, flagged, n_ref, n_cur,
		ref_from, ref_to, cur_from, cur_to, detail, reference)`)
	if err != nil {
		return fmt.Errorf("prepare insert of %d drift reports: %w", len(reports), err)
	}
	for _, r := range reports {
		flagged := uint8(0)
		if r.Flagged() {
			flagged = 1
		}
		if err := batch.Append(r.RunAt.UTC(), r.Model, r.Version, r.Source, r.Embedder, r.Test, r.Status,
			finite(r.Statistic), finite(r.PValue), finite(r.Effect), r.MinEffect, r.Alpha, flagged,
			uint32(r.NRef), uint32(r.NCur), unixTime(r.Ref.From), unixTime(r.Ref.To), unixTime(r.Cur.From), unixTime(r.Cur.To),
			r.Detail, r.Reference); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append drift report: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift reports: %w", len(reports), err)
	}
	return nil
}

// insertExplanations stores the explanations of flagged reports only: they
// are what an operator opens, and it keeps the table small.
func insertExplanations(ctx context.Context, conn driver.Conn, reports []Report) error {
	n := 0
	for _, r := range reports {
		if r.Flagged() {
			n += len(r.Explain)
		}
	}
	if n == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_explanations (run_at, model, model_version, source, test,
		kind, rank, item, value, p_value, detail)`)
	if err != nil {
		return fmt.Errorf("prepare insert of %d drift explanations: %w", n, err)
	}
	for _, r := range reports {
		if !r.Flagged() {
			continue
		}
		rank := map[string]uint16{}
		for _, e := range r.Explain {
			rank[e.Kind]++
			if err := batch.Append(r.RunAt.UTC(), r.Model, r.Version, r.Source, r.Test,
				e.Kind, rank[e.Kind], e.Item, finite(e.Value), e.PValue, e.Detail); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append drift explanation: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift explanations: %w", n, err)
	}
	return nil
}

func insertAccuracy(ctx context.Context, conn driver.Conn, runAt time.Time, runs []ScopeRun) error {
	if len(runs) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO drift_accuracy (run_at, model, model_version, source, method, value, n)`)
	if err != nil {
		return fmt.Errorf("prepare insert of drift accuracy: %w", err)
	}
	for _, run := range runs {
		a, sc := run.Accuracy, run.Scope
		for _, m := range []struct {
			method string
			v      float64
			n      int
		}{
			{AccuracyAvgConfidence, a.AvgConfidence, a.N},
			{AccuracyATC, a.ATC, a.N},
			{AccuracyRealised, a.Realised, a.Labeled},
			{AccuracyReference, a.RefRealised, a.RefLabeled},
		} {
			if err := batch.Append(runAt.UTC(), sc.Model, sc.Version, sc.Source, m.method, m.v, uint32(m.n)); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append drift accuracy: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert drift accuracy of %d scopes: %w", len(runs), err)
	}
	return nil
}

// finite maps ±Inf (e.g. a PSI with an empty class) to the largest float so
// that sorting and averaging in SQL keep working.
func finite(v float64) float64 {
	switch {
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}
