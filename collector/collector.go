// Package collector turns Explorer's job history into the exporter's metrics:
// it keeps an incrementally synced state of the jobs and renders it on each
// scrape.
package collector

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// Options tune the sync; the config package gives their defaults.
type Options struct {
	PageSize           int           // pageSize asked of Explorer
	Overlap            time.Duration // listings start this far before the newest job seen
	Lookback           time.Duration // unfinished jobs this recent are refreshed by the listing
	FullResyncInterval time.Duration // full history re-read; 0: never after the first
	SyncTimeout        time.Duration // bound of one sync
	RunBuckets         []float64     // seconds
	QueueBuckets       []float64     // seconds
	TaskBuckets        []float64     // seconds (task run durations)

	// DropClassicBuckets sheds the classic buckets of the duration
	// histograms (their largest share of series): only _sum, _count and,
	// in protobuf, the native buckets remain.
	DropClassicBuckets bool

	Tasks     TaskOptions
	Workflows WorkflowFilter

	MaxWorkflows   int // workflows exported at most (see README "Limits")
	MaxLabelLength int // longer label values are cut (see README "Limits")

	Concurrency int           // createTime windows a full sync pages at once; 1: sequential
	MaxBackoff  time.Duration // after failed syncs, the wait before the next grows up to this; 0: no backoff

	// PersistenceFile keeps the synced state across restarts ("": off); it
	// is written at most every PersistenceInterval and bound to ExplorerURL.
	PersistenceFile     string
	PersistenceInterval time.Duration
	ExplorerURL         string

	Telemetry *Telemetry          // the exporter's own counters; nil: none
	Extra     prometheus.Gatherer // served after the job metrics (build info, Go, process)
}

// TaskOptions tune the task metrics.
type TaskOptions struct {
	Enabled            bool
	MaxRequestsPerSync int           // GET jobs/<id> for tasks, at most this many per sync
	Backfill           time.Duration // a first sync covers jobs that ended within this
}

// WorkflowFilter selects the workflows exported, by name: included when it
// matches an Include pattern (or Include is empty) and no Exclude pattern.
// The patterns are anchored at both ends.
type WorkflowFilter struct {
	Include, Exclude []*regexp.Regexp
}

// Collector syncs with Explorer and serves the metrics. Concurrent scrapes
// share one sync.
type Collector struct {
	client *explorer.Client
	opts   Options
	logger log.Logger
	now    func() time.Time // the exporter's clock (listings, backoff, stalls); tests set it
	filter *nameFilter      // Options.Workflows

	mu       sync.Mutex
	running  *run // the sync under way; nil: none
	backoff  backoff
	state    *state      // last good sync; nil before the first
	jobs     *exposition // the job metrics of state, shared by scrapes
	lastFull time.Time   // when state was last rebuilt from the full history
	health   syncHealth
	// inherited is the state of the collector this one replaced at a
	// reload: the first full sync keeps its counters (see Inherit).
	inherited *state
	persist   persistence
	persistMu sync.Mutex // one state file write at a time
	// skewLogged: a createTime ahead of the exporter's clock was logged (once).
	skewLogged bool
}

// syncHealth describes the last completed sync.
type syncHealth struct {
	ok          bool
	duration    time.Duration
	requests    int
	lastSuccess time.Time
	// createAheadMs is how far the newest createTime lies ahead of the
	// exporter's clock, as of the last good sync; 0 when it does not.
	createAheadMs int64
}

// New returns a collector; it does not contact Explorer before the first scrape.
func New(client *explorer.Client, opts Options, logger log.Logger) *Collector {
	c := &Collector{client: client, opts: opts, logger: logger, now: time.Now, filter: newNameFilter(opts.Workflows)}
	if opts.PersistenceFile != "" {
		c.loadState()
	}
	return c
}

// serving says what a scrape gets while the sync fails: the last synced
// values, or none before the first good sync. c.mu must be held.
func (c *Collector) serving() string {
	if c.state == nil {
		return "no synced values yet (no sync has succeeded)"
	}
	return "serving the last synced values"
}

// timeoutHint names the limit that fired, if err is a timeout: the sync's
// own bound (sync.timeout), or one request's (explorer.timeout).
func (c *Collector) timeoutHint(syncCtx context.Context, err error) string {
	switch {
	case errors.Is(syncCtx.Err(), context.DeadlineExceeded):
		return "the sync ran out of time: raise sync.timeout (" + c.opts.SyncTimeout.String() + ")"
	case explorer.IsRequestTimeout(err):
		return "one request to Explorer ran out of time: raise explorer.timeout, or make pages smaller (explorer.page_size)"
	}
	return ""
}

// syncOnce is the sync r: it runs to its end (bounded by SyncTimeout), and
// applies its result unless r was abandoned meanwhile.
func (c *Collector) syncOnce(ctx context.Context, r *run) {
	defer close(r.done)
	defer c.saveState(false) // when the result is applied, before the scrapes waiting for it go on
	ctx, cancel := context.WithTimeout(ctx, c.opts.SyncTimeout)
	defer cancel()
	start := time.Now()

	c.mu.Lock()
	old, lastFull, inherited := c.state, c.lastFull, c.inherited
	c.mu.Unlock()

	y := &syncer{client: c.client, pageSize: c.opts.PageSize, concurrency: c.opts.Concurrency, overlap: c.opts.Overlap, lookback: c.opts.Lookback, nowMs: c.now().UnixMilli(), progress: r.touch}
	full := old == nil || (c.opts.FullResyncInterval > 0 && start.Sub(lastFull) >= c.opts.FullResyncInterval)
	var next *state
	var err error
	if full {
		base := old // whose counters the new state keeps
		if base == nil {
			base = inherited
		}
		next = newState(c.opts.RunBuckets, c.opts.QueueBuckets)
		next.dropClassic = c.opts.DropClassicBuckets
		next.filter = c.filter
		next.tasks = c.carryTasks(base, start)
		next.limits = limits{maxWorkflows: c.opts.MaxWorkflows, maxLabelLength: c.opts.MaxLabelLength}
		if next.tasks != nil {
			next.tasks.maxLabelLength = c.opts.MaxLabelLength
		}
		err = y.full(ctx, next)
		if err == nil && base != nil {
			next.keepCountersFrom(base)
		}
	} else {
		next = old.clone()
		next.filter = c.filter
		err = y.incremental(ctx, next)
	}
	if err == nil && next.tasks != nil {
		err = c.fetchTasks(ctx, y, next, full)
	}
	if err == nil {
		next.raiseFloor(next.listFrom(c.opts.Overlap.Milliseconds(), c.opts.Lookback.Milliseconds(), y.nowMs))
	}
	end := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running != r {
		return // abandoned: counted and logged then
	}
	c.running = nil
	c.opts.Telemetry.observeSync(full, err == nil)
	c.health.ok, c.health.duration, c.health.requests = err == nil, end.Sub(start), y.requests
	if err != nil {
		c.opts.Telemetry.observeSyncError(err)
		keyvals := []any{"full", full, "requests", y.requests}
		if hint := c.timeoutHint(ctx, err); hint != "" {
			keyvals = append(keyvals, "hint", hint)
		}
		c.failed(r, err, keyvals...)
		return
	}
	c.succeeded()
	level.Debug(c.logger).Log("msg", "synced with Explorer", "full", full, "requests", y.requests, "duration", end.Sub(start),
		"workflows", len(next.workflows), "unfinished", len(next.unfinished))
	c.health.createAheadMs = max(0, subSat(next.newest, y.nowMs))
	if c.health.createAheadMs > c.opts.Overlap.Milliseconds() && !c.skewLogged {
		c.skewLogged = true
		level.Warn(c.logger).Log("msg", "Explorer lists a job created after the exporter's current time (clock skew, or a bogus createTime); "+
			"listings start from the exporter's time instead, so new jobs are still seen. Logged once; see nebula_explorer_job_create_time_ahead_seconds",
			"ahead_seconds", float64(c.health.createAheadMs)/1000)
	}
	if !full && !next.changed {
		c.health.lastSuccess = end // nothing changed: keep serving the same metrics
		return
	}
	c.state, c.jobs, c.health.lastSuccess = next, newExposition(next), end
	c.persist.dirty = true
	if full {
		c.lastFull, c.inherited = start, nil
	}
}

// carryTasks returns the task state a full sync starts from: nil when task
// metrics are off; else old's (counters are never recomputed), set to count
// the tasks only of jobs old has not handled, or, on the first sync, of jobs
// that ended within Tasks.Backfill.
func (c *Collector) carryTasks(old *state, now time.Time) *taskState {
	if !c.opts.Tasks.Enabled {
		return nil
	}
	if old == nil || old.tasks == nil {
		buckets := c.opts.TaskBuckets
		if len(buckets) == 0 {
			buckets = c.opts.RunBuckets // the config's default
		}
		t := newTaskState(buckets)
		t.since = now.Add(-c.opts.Tasks.Backfill).UnixMilli()
		return t
	}
	t := old.tasks.clone()
	t.base = old
	return t
}

// fetchTasks fetches, within the per-sync budget, the tasks of finished jobs
// whose listing did not carry them. A failed detail request is logged and
// retried at a later sync; only the sync's own deadline fails the sync.
func (c *Collector) fetchTasks(ctx context.Context, y *syncer, s *state, full bool) error {
	if full {
		s.tasks.keepWorkflowsOf(s)
	}
	err := y.fetchTasks(ctx, s, c.opts.Tasks.MaxRequestsPerSync)
	s.tasks.since, s.tasks.base = 0, nil
	if errors.Is(err, errTaskDetail) {
		level.Warn(c.logger).Log("msg", "task metrics: a job's detail could not be fetched; retrying at a later sync", "err", err)
		return nil
	}
	return err
}

// current returns the job metrics of the last good sync and a registry of
// the health of the last sync, read together so a scrape sees one moment.
func (c *Collector) current() (*exposition, *prometheus.Registry) {
	c.mu.Lock()
	jobs, h, p := c.jobs, health(c.health), c.persist
	c.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	if c.opts.PersistenceFile != "" {
		reg.MustRegister(persistHealth(p))
	}
	if jobs != nil {
		reg.MustRegister(totals{jobs.state})
	}
	return jobs, reg
}

// Gatherer returns the current values, consistent with each other: the job
// metrics of the last good sync and the health of the last sync.
func (c *Collector) Gatherer() prometheus.Gatherer {
	jobs, reg := c.current()
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		families, err := reg.Gather()
		if jobs != nil {
			rendered, _ := render(context.Background(), jobs.state) // never ends early
			families = append(families, rendered...)
		}
		return families, err
	})
}
