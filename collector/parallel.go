package collector

import (
	"context"
	"slices"
	"sync"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// A parallel full sync splits the history into disjoint createTime windows
// and pages several at once, each by key (Client.EachJob) as a sequential
// sync pages the whole. Exactness is the sequential sync's: every job lies in
// exactly one window (inclusive millisecond bounds, the last one open-ended
// for the jobs created meanwhile), and EachJob visits each job of its window
// once, page caps and crowded milliseconds included. Folding is
// order-independent (counts, integer-millisecond sums, maxima, the "latest"
// job by (time, id)), so the result does not depend on which window comes
// first.
//
// Windows follow the density of the history, not the clock: a window
// holding more than its share of jobs (the listing's total says how many) is
// halved in time, one request counting its first half, until each holds
// about total / (windowsPerWorker * concurrency) jobs or one millisecond.
// The largest windows go first, so the workers finish together.
const windowsPerWorker = 4

// window is a createTime range to page: from and to are inclusive bounds
// (0: none); lo and hi the createTimes it spans as far as known, count its
// jobs as counted.
type window struct {
	from, to int64
	lo, hi   int64
	count    int
}

// fullParallel is a full sync in windows paged by y.concurrency workers.
func (y *syncer) fullParallel(ctx context.Context, s *state) error {
	oldest, err := y.probe(ctx, explorer.Filter{OrderByCreateTime: "asc"})
	if err != nil {
		return err
	}
	if oldest.Total <= 2*y.pageSize || len(oldest.Items) == 0 {
		return y.fullSequential(ctx, s) // a page or two: nothing to share out
	}
	newest, err := y.probe(ctx, explorer.Filter{OrderByCreateTime: "desc"})
	if err != nil {
		return err
	}
	if len(newest.Items) == 0 {
		return y.fullSequential(ctx, s)
	}
	lo, hi := oldest.Items[0].CreateTime, newest.Items[0].CreateTime
	// No later listing starts before horizon - lookback, so the older jobs
	// need no dedup entry (the sequential sync raises the floor as it goes).
	s.floor = max(s.floor, subSat(min(hi, y.nowMs), y.lookback.Milliseconds()))
	target := max(y.pageSize, oldest.Total/(windowsPerWorker*y.concurrency))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards s, queue, busy and firstErr
		cond     = sync.NewCond(&mu)
		queue    = []window{{lo: lo, hi: hi, count: oldest.Total}}
		busy     int
		firstErr error
	)
	observe := func(j explorer.Job) {
		mu.Lock()
		s.observe(j)
		mu.Unlock()
	}
	work := func(w window) error {
		if mid := w.lo + (w.hi-w.lo)/2; w.count > target && w.hi > w.lo && mid >= 1 {
			left, right, err := y.split(ctx, w, mid)
			mu.Lock()
			queue = append(queue, left, right)
			mu.Unlock()
			return err
		}
		n, err := y.client.EachJob(ctx, explorer.Filter{FromCreateTime: w.from, ToCreateTime: w.to}, y.pageSize, func(j explorer.Job) {
			y.touch()
			observe(j)
		})
		y.count(n)
		return err
	}
	worker := func() {
		mu.Lock()
		defer mu.Unlock()
		for {
			for len(queue) == 0 && busy > 0 && firstErr == nil {
				cond.Wait()
			}
			if len(queue) == 0 || firstErr != nil {
				cond.Broadcast()
				return
			}
			// The largest window first, so that no worker is left with a
			// big one at the end.
			i := 0
			for k, w := range queue {
				if w.count > queue[i].count {
					i = k
				}
			}
			w := queue[i]
			queue = slices.Delete(queue, i, i+1)
			busy++
			mu.Unlock()
			err := work(w)
			mu.Lock()
			busy--
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
			cond.Broadcast()
		}
	}
	var wg sync.WaitGroup
	for range y.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker()
		}()
	}
	wg.Wait()
	return firstErr
}

// split halves w at mid, counting the first half with one request.
func (y *syncer) split(ctx context.Context, w window, mid int64) (left, right window, err error) {
	p, err := y.probe(ctx, explorer.Filter{FromCreateTime: w.from, ToCreateTime: mid, OrderByCreateTime: "asc"})
	if err != nil {
		return left, right, err
	}
	left = window{from: w.from, to: mid, lo: w.lo, hi: mid, count: p.Total}
	if len(p.Items) > 0 {
		left.lo = max(left.lo, p.Items[0].CreateTime) // skip the empty stretch
	}
	right = window{from: mid + 1, to: w.to, lo: mid + 1, hi: max(w.hi, mid+1), count: max(0, w.count-p.Total)}
	return left, right, nil
}

// probe lists one job of f: the answer's total counts them all.
func (y *syncer) probe(ctx context.Context, f explorer.Filter) (*explorer.JobPage, error) {
	p, err := y.client.ListJobs(ctx, f, 1, 1)
	y.count(1)
	if err == nil {
		y.touch()
	}
	return p, err
}
