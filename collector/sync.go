package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// maxDirectRefresh is how many old unfinished jobs are refreshed one request
// each; beyond it, three status listings are cheaper.
const maxDirectRefresh = 3

// unfinishedStatuses are listed to refresh old unfinished jobs.
var unfinishedStatuses = [...]int{explorer.StatusPreparing, explorer.StatusRunning, explorer.StatusStopping}

// syncer brings a state up to date with Explorer.
type syncer struct {
	client            *explorer.Client
	pageSize          int
	concurrency       int // createTime windows a full sync pages at once
	overlap, lookback time.Duration
	nowMs             int64      // the exporter's clock when the sync started
	requestsMu        sync.Mutex // windows of a parallel sync count at once
	requests          int        // API requests of the current sync
	progress          func()     // called when a request completed; nil: none
}

// count adds n requests to the sync's.
func (y *syncer) count(n int) {
	y.requestsMu.Lock()
	y.requests += n
	y.requestsMu.Unlock()
}

// touch notes progress: a request completed.
func (y *syncer) touch() {
	if y.progress != nil {
		y.progress()
	}
}

// full rebuilds the state from the whole history: in one ascending pass, or
// in createTime windows paged concurrently (see parallel.go).
func (y *syncer) full(ctx context.Context, s *state) error {
	if y.concurrency > 1 {
		return y.fullParallel(ctx, s)
	}
	return y.fullSequential(ctx, s)
}

// fullSequential is a full sync in one ascending pass.
func (y *syncer) fullSequential(ctx context.Context, s *state) error {
	lookbackMs := y.lookback.Milliseconds()
	limit := 1024
	return y.each(ctx, explorer.Filter{}, func(j explorer.Job) {
		// Jobs arrive oldest first and no later listing starts before
		// horizon - lookback, so older jobs need no dedup entry: raise the
		// floor as we go, and trim the entries below it now and then.
		s.floor = max(s.floor, subSat(min(j.CreateTime, y.nowMs), lookbackMs))
		s.observe(j)
		if len(s.finishedSince) > limit {
			s.raiseFloor(subSat(s.horizon(y.nowMs), lookbackMs))
			limit = max(1024, 2*len(s.finishedSince))
		}
	})
}

// incremental fetches what can have changed since the last sync: jobs
// created from listFrom on (new ones and the recent unfinished ones), then
// the older unfinished jobs.
func (y *syncer) incremental(ctx context.Context, s *state) error {
	from := s.listFrom(y.overlap.Milliseconds(), y.lookback.Milliseconds(), y.nowMs)
	if err := y.each(ctx, explorer.Filter{FromCreateTime: from}, s.observe); err != nil {
		return err
	}
	var old []int64
	for id, u := range s.unfinished {
		if u.createTime < from {
			old = append(old, id)
		}
	}
	if len(old) > maxDirectRefresh {
		// List what is still unfinished (in the documented statuses and in
		// any other the old jobs are in); jobs not listed have finished or
		// are gone, and are fetched below. A listed job we never saw
		// appeared late: observe counts it.
		statuses := map[int]bool{}
		for _, status := range unfinishedStatuses {
			statuses[status] = true
		}
		for _, id := range old {
			statuses[s.unfinished[id].status] = true
		}
		listed := map[int64]bool{}
		for status := range statuses {
			f := explorer.Filter{Status: &status, ToCreateTime: from}
			err := y.each(ctx, f, func(j explorer.Job) {
				listed[j.ID] = true
				s.observe(j)
			})
			if err != nil {
				return err
			}
		}
		old = old[:0]
		for id, u := range s.unfinished {
			if u.createTime < from && !listed[id] {
				old = append(old, id)
			}
		}
	}
	for _, id := range old {
		if err := y.refresh(ctx, s, id); err != nil {
			return err
		}
	}
	return nil
}

// refresh fetches one job by id; a job Explorer no longer has is forgotten.
func (y *syncer) refresh(ctx context.Context, s *state, id int64) error {
	y.count(1)
	j, err := y.client.Job(ctx, id)
	y.touch()
	var apiErr *explorer.Error
	if errors.As(err, &apiErr) && apiErr.IsNotFound() {
		s.forget(id)
		return nil
	}
	if err != nil {
		return err
	}
	s.observe(*j)
	return nil
}

func (y *syncer) each(ctx context.Context, f explorer.Filter, visit func(explorer.Job)) error {
	n, err := y.client.EachJob(ctx, f, y.pageSize, func(j explorer.Job) {
		y.touch() // a page arrived
		visit(j)
	})
	y.count(n)
	return err
}
