package simulate

import (
	"math"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-dev/lookout/internal/event"
)

func TestEventsPassTheEventContract(t *testing.T) {
	const rate = 60.0
	g := newTestGenerator(t, func(c *Config) { c.LabelFraction = 0.3; c.ShiftAfter = 10 * time.Second })
	ids := map[string]bool{}
	labels := 0
	for k := range 2000 { // 33 s: before and after the shift
		p, l := g.Next(at(k, rate))
		checkPrediction(t, p)
		if ids[p.EventID] {
			t.Fatalf("event_id %s repeated", p.EventID)
		}
		ids[p.EventID] = true
		if l != nil {
			labels++
			checkLabel(t, p, *l)
		}
	}
	if labels < 450 || labels > 750 {
		t.Errorf("%d labels for 2000 events at label_fraction 0.3", labels)
	}
}

func checkPrediction(t *testing.T, p event.Prediction) {
	t.Helper()
	data, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.DecodePrediction(data)
	if err != nil {
		t.Fatalf("generated event does not decode: %v\n%s", err, data)
	}
	if got.EventID != p.EventID || !got.TS.Equal(p.TS.Truncate(time.Millisecond)) || got.PredictedClass != p.PredictedClass {
		t.Errorf("round trip changed the event: %+v vs %+v", got, p)
	}
	if got.SchemaVersion != 1 || got.Task != event.TaskClassification || got.Arm != event.ArmStable || got.LatencyMS == nil {
		t.Errorf("unexpected fields: %s", data)
	}
	if len(got.Probs) != len(Classes) {
		t.Errorf("probs has %d classes, want %d", len(got.Probs), len(Classes))
	}
	if s := got.Scores(); s.TopClass != p.PredictedClass {
		t.Errorf("predicted_class %s is not the argmax %s", p.PredictedClass, s.TopClass)
	}
	sum := 0.0
	for _, e := range got.Probs {
		sum += e.Score
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("probs sum to %v", sum)
	}
	checkImageURI(t, got.ImageURI)
}

func checkImageURI(t *testing.T, uri string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" || !strings.HasPrefix(u.Path, "/") {
		t.Fatalf("image_uri %q is not an absolute file:// URI", uri)
	}
	if _, err := os.Stat(u.Path); err != nil {
		t.Errorf("image_uri points at a missing file: %v", err)
	}
}

func checkLabel(t *testing.T, p event.Prediction, l event.Label) {
	t.Helper()
	data, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.DecodeLabel(data)
	if err != nil {
		t.Fatalf("generated label does not decode: %v\n%s", err, data)
	}
	if got.EventID != p.EventID || got.Annotator != Annotator || !got.TS.Equal(p.TS.Truncate(time.Millisecond)) {
		t.Errorf("label %+v does not match prediction %s", got, p.EventID)
	}
	if !slices.Contains(Classes, got.Label) {
		t.Errorf("label %q is not a class", got.Label)
	}
	// The picture shows the true class, so the label names its pool file.
	if !strings.Contains(p.ImageURI, "/"+got.Label+"-") {
		t.Errorf("label %q does not match the picture %s", got.Label, p.ImageURI)
	}
}

// window summarises one source's predictions over a time window.
type window struct {
	n, correct, labelled int
	conf                 float64
	classes              map[string]int
	shiftedPictures      int
}

func (w *window) add(p event.Prediction, l *event.Label) {
	if w.classes == nil {
		w.classes = map[string]int{}
	}
	w.n++
	conf, _ := p.Probs.Get(p.PredictedClass)
	w.conf += conf
	w.classes[p.PredictedClass]++
	if strings.Contains(p.ImageURI, "/"+condShifted+"/") {
		w.shiftedPictures++
	}
	if l != nil {
		w.labelled++
		if l.Label == p.PredictedClass {
			w.correct++
		}
	}
}

func (w *window) meanConf() float64 { return w.conf / float64(w.n) }
func (w *window) accuracy() float64 { return float64(w.correct) / float64(w.labelled) }

func (w *window) share(classes ...string) float64 {
	n := 0
	for _, c := range classes {
		n += w.classes[c]
	}
	return float64(n) / float64(w.n)
}

// tv is the total variation distance between two predicted-class mixes.
func tv(a, b *window) float64 {
	d := 0.0
	for _, c := range Classes {
		d += math.Abs(float64(a.classes[c])/float64(a.n) - float64(b.classes[c])/float64(b.n))
	}
	return d / 2
}

func TestShiftChangesOnlyTheShiftedSource(t *testing.T) {
	const rate = 60.0
	g := newTestGenerator(t, func(c *Config) { c.ShiftAfter = time.Minute; c.LabelFraction = 1 })
	before, after := map[string]*window{}, map[string]*window{}
	for _, s := range g.Config().Sources {
		before[s], after[s] = &window{}, &window{}
	}
	for k := range int(2 * time.Minute.Seconds() * rate) {
		now := at(k, rate)
		p, l := g.Next(now)
		if now.Before(t0.Add(time.Minute)) {
			before[p.Source].add(p, l)
		} else {
			after[p.Source].add(p, l)
		}
	}
	confusions := []string{"stain", "discoloration", "rust"}
	for _, s := range []string{"cam-1", "cam-3"} {
		b, a := before[s], after[s]
		if a.shiftedPictures > 0 || b.shiftedPictures > 0 {
			t.Errorf("%s shows shifted pictures", s)
		}
		if b.meanConf() < 0.85 || a.meanConf() < 0.85 {
			t.Errorf("%s confidence %.2f before, %.2f after; want both ≥ 0.85", s, b.meanConf(), a.meanConf())
		}
		if d := tv(b, a); d > 0.1 {
			t.Errorf("%s predicted-class mix moved by %.2f without a shift", s, d)
		}
		if acc := a.accuracy(); acc < 0.9 {
			t.Errorf("%s accuracy %.2f, want ≥ 0.9", s, acc)
		}
		if d := tv(before["cam-2"], b); d > 0.15 {
			t.Errorf("before the shift cam-2 differs from %s by %.2f", s, d)
		}
	}
	b, a := before["cam-2"], after["cam-2"]
	if b.shiftedPictures > 0 || a.shiftedPictures != a.n {
		t.Errorf("cam-2 shifted pictures: %d of %d before, %d of %d after", b.shiftedPictures, b.n, a.shiftedPictures, a.n)
	}
	if b.meanConf() < 0.85 || a.meanConf() > 0.7 {
		t.Errorf("cam-2 confidence %.2f before, %.2f after; want ≥ 0.85 then ≤ 0.7", b.meanConf(), a.meanConf())
	}
	if d := tv(b, a); d < 0.25 {
		t.Errorf("cam-2 predicted-class mix moved by only %.2f under the shift", d)
	}
	if sb, sa := b.share(confusions...), a.share(confusions...); sa < sb+0.2 {
		t.Errorf("cam-2 share of %v went from %.2f to %.2f; want a clear rise", confusions, sb, sa)
	}
	if acc := a.accuracy(); acc > 0.65 || acc < 0.35 {
		t.Errorf("cam-2 accuracy under the shift %.2f, want about 0.5", acc)
	}
	if b.share("good") <= 0.4 {
		t.Errorf("good is %.2f of cam-2's predictions before the shift; want the most common class", b.share("good"))
	}
}

func TestShiftedFollowsShiftAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		shiftAfter time.Duration
		query      time.Duration
		want       bool
	}{
		{"before", time.Minute, 59 * time.Second, false},
		{"at", time.Minute, time.Minute, true},
		{"after", time.Minute, time.Hour, true},
		{"from the start", 0, 0, true},
		{"never", -1, 1000 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGenerator(t, func(c *Config) { c.ShiftAfter = tc.shiftAfter })
			if got := g.Shifted("cam-2", t0); got != (tc.shiftAfter == 0) {
				t.Errorf("before the first event Shifted = %v", got)
			}
			g.Next(t0)
			if got := g.Shifted("cam-2", t0.Add(tc.query)); got != tc.want {
				t.Errorf("Shifted(cam-2, +%v) = %v, want %v", tc.query, got, tc.want)
			}
			if g.Shifted("cam-1", t0.Add(tc.query)) {
				t.Error("cam-1 is shifted")
			}
		})
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	gen := func(seed int64) *Generator {
		return newTestGenerator(t, func(c *Config) { c.Seed = seed; c.ShiftAfter = 5 * time.Second; c.LabelFraction = 0.2 })
	}
	run := func(g *Generator, start time.Time) ([]event.Prediction, []*event.Label) {
		var ps []event.Prediction
		var ls []*event.Label
		for k := range 600 {
			p, l := g.Next(start.Add(time.Duration(k) * 20 * time.Millisecond))
			ps, ls = append(ps, p), append(ls, l)
		}
		return ps, ls
	}
	p1, l1 := run(gen(9), t0)
	p2, l2 := run(gen(9), t0)
	if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(l1, l2) {
		t.Fatal("the same seed and timestamps gave different events")
	}
	p3, _ := run(gen(10), t0)
	if reflect.DeepEqual(classesOf(p1), classesOf(p3)) {
		t.Error("different seeds gave the same predictions")
	}
	// A restart later with the same seed replays the traffic but must not
	// reuse event ids already published.
	p4, _ := run(gen(9), t0.Add(time.Hour))
	if p4[0].EventID == p1[0].EventID {
		t.Error("a later run with the same seed reused event ids")
	}
	if !reflect.DeepEqual(classesOf(p1), classesOf(p4)) {
		t.Error("a later run with the same seed changed the traffic")
	}
}

func classesOf(ps []event.Prediction) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Source+"/"+p.PredictedClass+"/"+p.ImageURI)
	}
	return out
}

func TestZeroLabelFractionMeansNoLabels(t *testing.T) {
	g := newTestGenerator(t, func(c *Config) { c.LabelFraction = 0 })
	for k := range 500 {
		if _, l := g.Next(at(k, 60)); l != nil {
			t.Fatal("label produced with label_fraction 0")
		}
	}
}

func TestSourcesTakeTurns(t *testing.T) {
	g := newTestGenerator(t, nil)
	for k := range 9 {
		p, _ := g.Next(at(k, 60))
		if want := g.Config().Sources[k%3]; p.Source != want {
			t.Errorf("event %d from %s, want %s", k, p.Source, want)
		}
	}
}

func TestGeneratorIsSafeForConcurrentUse(t *testing.T) {
	g := newTestGenerator(t, nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for k := range 200 {
				now := at(k*4+w, 60)
				g.Next(now)
				g.Shifted("cam-2", now)
			}
		})
	}
	wg.Wait()
}
