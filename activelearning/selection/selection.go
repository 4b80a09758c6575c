// Package selection picks the items worth labelling from scored candidates:
// the most uncertain ones, spread over the embedding space so near-duplicates
// are never picked twice (also not against items already queued or
// labelled), within per-class and per-source quotas.
//
// The algorithm is a score-weighted k-center greedy. The PoolFactor × budget
// highest-scoring candidates form the pool; each step picks the pool item
// with the highest score × min(distance to everything picked or seeded, 1),
// skipping items closer than DuplicateDistance to any of those and items
// whose class or source has used its quota. Distances are squared L2 between
// unit embeddings (0 identical … 4 opposite). The greedy is evaluated lazily
// (see pool), which gives the same picks as recomputing every distance each
// step at a small fraction of the cost.
package selection

import (
	"cmp"
	"container/heap"
	"math"
	"runtime"
	"slices"
	"sync"
)

// Candidate is one image that could be queued.
type Candidate struct {
	EventID string
	Class   string
	Source  string
	// Score is the combined worth-labelling score, higher first.
	Score float64
	// Embedding is the unit-norm image embedding; nil means the candidate
	// cannot be checked for near-duplicates and is treated as novel.
	Embedding []float32
}

// Options tune one selection.
type Options struct {
	// Budget is the most items to pick.
	Budget int
	// PoolFactor × Budget top-scoring candidates enter the diversity step
	// (default 10).
	PoolFactor int
	// DuplicateDistance: a candidate closer than this (squared L2) to a pick
	// or seed is a near-duplicate and never picked.
	DuplicateDistance float64
	// ClassQuota and SourceQuota cap the share of Budget one class or source
	// may take, in (0,1]; 0 means no cap.
	ClassQuota, SourceQuota float64
	// Workers split the comparison of one item with many centers, e.g. the
	// seeds on its first look (default GOMAXPROCS).
	Workers int
}

// Pick is one selected candidate.
type Pick struct {
	// Index into the candidates given to Select.
	Index int
	// Novelty is the squared distance to the nearest earlier pick or seed at
	// the time of picking (+Inf when there was none).
	Novelty float64
	// Priority is the value that won the step: Score × min(Novelty, 1).
	Priority float64
}

// noveltyCap bounds how much distance can buy: beyond it an item is simply
// "new", so a far outlier does not beat a much more uncertain image.
const noveltyCap = 1.0

// Select picks up to opts.Budget candidates in pick order. seeds are the
// embeddings of items already queued or labelled.
func Select(cands []Candidate, seeds [][]float32, opts Options) []Pick {
	if opts.Budget <= 0 || len(cands) == 0 {
		return nil
	}
	p := newPool(cands, seeds, opts)
	classCap := quota(opts.ClassQuota, opts.Budget)
	sourceCap := quota(opts.SourceQuota, opts.Budget)
	classN := map[string]int{}
	sourceN := map[string]int{}
	var picks []Pick
	for len(picks) < opts.Budget {
		i, ok := p.next()
		if !ok {
			break
		}
		c := cands[p.idx[i]]
		if classN[c.Class] >= classCap || sourceN[c.Source] >= sourceCap {
			// Over quota: dropped from this run without becoming a center.
			continue
		}
		classN[c.Class]++
		sourceN[c.Source]++
		picks = append(picks, Pick{Index: p.idx[i], Novelty: p.minDist[i], Priority: p.priority(i)})
		if p.vecs[i] != nil {
			p.centers = append(p.centers, p.vecs[i])
		}
	}
	return picks
}

func quota(share float64, budget int) int {
	if share <= 0 || share >= 1 {
		return math.MaxInt
	}
	return max(1, int(math.Ceil(share*float64(budget))))
}

// pool is the diversity step's working set. It runs the greedy lazily: an
// item's priority only falls as centers are added (its distance to the
// nearest center can only shrink), so a heap of stale priorities is a heap
// of upper bounds. The top item is brought up to date against the centers it
// has not seen yet; if it still beats the next bound it is the exact argmax.
// The result equals the eager greedy's, at a fraction of the distance
// computations, because most items never reach the top.
type pool struct {
	cands   []Candidate
	idx     []int       // pool position → candidate index
	vecs    [][]float32 // pool position → embedding (nil allowed)
	minDist []float64
	seen    []int // how many centers each item has been compared with
	centers [][]float32
	heap    boundHeap
	dup     float64
	workers int
}

func newPool(cands []Candidate, seeds [][]float32, opts Options) *pool {
	factor := cmp.Or(opts.PoolFactor, 10)
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(cands[b].Score, cands[a].Score); c != 0 {
			return c
		}
		return cmp.Compare(cands[a].EventID, cands[b].EventID)
	})
	n := min(len(order), factor*opts.Budget)
	p := &pool{
		cands: cands, idx: order[:n], vecs: make([][]float32, n),
		minDist: make([]float64, n), seen: make([]int, n),
		dup: opts.DuplicateDistance, workers: cmp.Or(opts.Workers, runtime.GOMAXPROCS(0)),
	}
	for _, s := range seeds {
		if len(s) > 0 {
			p.centers = append(p.centers, s)
		}
	}
	p.heap = make(boundHeap, n)
	for i, ci := range p.idx {
		p.vecs[i] = cands[ci].Embedding
		p.minDist[i] = math.Inf(1)
		p.heap[i] = bound{pos: i, value: p.priority(i)}
	}
	heap.Init(&p.heap)
	return p
}

func (p *pool) priority(i int) float64 {
	return p.cands[p.idx[i]].Score * min(p.minDist[i], noveltyCap)
}

// next pops the eligible item of highest exact priority.
func (p *pool) next() (int, bool) {
	for p.heap.Len() > 0 {
		top := heap.Pop(&p.heap).(bound)
		i := top.pos
		p.refresh(i)
		if p.minDist[i] < p.dup {
			continue // a near-duplicate of a pick or seed: never eligible again
		}
		b := bound{pos: i, value: p.priority(i)}
		if p.heap.Len() == 0 || !p.heap.less(p.heap[0], b) {
			return i, true
		}
		heap.Push(&p.heap, b)
	}
	return 0, false
}

// refresh compares item i with the centers added since it was last looked
// at. Many unseen centers (the seeds, on first look) are split across
// workers.
func (p *pool) refresh(i int) {
	v := p.vecs[i]
	todo := p.centers[p.seen[i]:]
	p.seen[i] = len(p.centers)
	if v == nil || len(todo) == 0 {
		return
	}
	w := max(1, min(p.workers, len(todo)/256))
	if w == 1 {
		p.minDist[i] = min(p.minDist[i], nearest(v, todo))
		return
	}
	chunk := (len(todo) + w - 1) / w
	res := make([]float64, w)
	var wg sync.WaitGroup
	for k := range w {
		part := todo[min(len(todo), k*chunk):min(len(todo), (k+1)*chunk)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[k] = nearest(v, part)
		}()
	}
	wg.Wait()
	for _, d := range res {
		p.minDist[i] = min(p.minDist[i], d)
	}
}

func nearest(v []float32, centers [][]float32) float64 {
	d := math.Inf(1)
	for _, c := range centers {
		if len(c) == len(v) {
			d = min(d, sqDist(v, c))
		}
	}
	return d
}

type bound struct {
	pos   int
	value float64
}

// boundHeap is a max-heap on value; ties go to the lower pool position (the
// higher score), so runs are deterministic.
type boundHeap []bound

func (h boundHeap) less(a, b bound) bool {
	if a.value != b.value {
		return a.value > b.value
	}
	return a.pos < b.pos
}
func (h boundHeap) Len() int           { return len(h) }
func (h boundHeap) Less(i, j int) bool { return h.less(h[i], h[j]) }
func (h boundHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *boundHeap) Push(x any)        { *h = append(*h, x.(bound)) }
func (h *boundHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sqDist is the squared L2 distance, unrolled by four: the inner loop of the
// whole selection.
func sqDist(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return float64(s0 + s1 + s2 + s3)
}

// SqDist is the squared L2 distance between two embeddings of equal length.
func SqDist(a, b []float32) float64 { return sqDist(a, b) }
