package collector

import (
	"maps"
	"math"
	"unicode/utf8"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// workflowKey identifies one workflow's series. A renamed workflow gets new series.
type workflowKey struct{ id, name string }

// terminalIndex is a terminal status's index in the per-status arrays below
// (success, failed, interrupted).
func terminalIndex(status int) int { return status - explorer.StatusSuccess }

// workflowStats aggregates a workflow's terminal jobs, which never change
// again, so they are folded into counts and forgotten. created and the queue
// histogram also count the unfinished jobs, once each, when first seen (and
// when they start).
type workflowStats struct {
	created      uint64
	terminal     [3]uint64 // jobs now in each terminal status (a gauge: exact, may drop after deletions)
	finished     [3]uint64 // the same as a counter: never decreases
	run          [3]histogram
	queue        histogram
	lastFinishMs [3]int64 // latest runEndTime per terminal status; 0: none
	last         [3]lastJob
	cut          bool // its workflow or workflow_id label was cut to limits.maxLabelLength
}

// jobRef places a terminal job in the order that decides the "latest" job of
// a workflow: by its runEndTime, or its createTime when it has none; ties go
// to the greater id.
type jobRef struct{ at, id int64 }

func refOf(j explorer.Job) jobRef {
	if j.RunEndTime > 0 {
		return jobRef{j.RunEndTime, j.ID}
	}
	return jobRef{j.CreateTime, j.ID}
}

func (a jobRef) after(b jobRef) bool { return a.at > b.at || a.at == b.at && a.id > b.id }

// lastJob is the latest job of a workflow in one terminal status. Being a
// maximum, it is folded in once per job like the counts, and a full resync
// recomputes it, so it follows deletions like the gauges.
type lastJob struct {
	seen  bool
	ref   jobRef
	runMs int64 // its run time; -1: none valid
}

// latest returns the terminal index of the workflow's latest job, -1 if it has none.
func (w *workflowStats) latest() int {
	best := -1
	for i, l := range w.last {
		if l.seen && (best < 0 || l.ref.after(w.last[best].ref)) {
			best = i
		}
	}
	return best
}

// unfinishedJob is a job that can still change: every job not in a terminal status.
type unfinishedJob struct {
	key        workflowKey
	status     int
	createTime int64
	runBegin   int64
	queued     bool // its queue duration has been observed
}

// state is everything the exporter knows about Explorer's jobs: O(workflows +
// unfinished jobs + jobs created within the look-back), never O(history).
type state struct {
	workflows  map[workflowKey]*workflowStats
	unfinished map[int64]unfinishedJob
	// finishedSince holds the terminal jobs created at or after floor (id ->
	// createTime): listings start at floor or later, and a job they show again
	// must not be counted twice.
	finishedSince map[int64]int64
	floor         int64      // ms; see finishedSince
	newest        int64      // latest createTime seen, ms
	changed       bool       // a job was added, changed or forgotten since clone
	tasks         *taskState // nil: task metrics off
	// Settings, not synced data: the state file leaves them out (persist:"-")
	// and a loaded state gets the configuration's.
	dropClassic bool        `persist:"-"` // render the duration histograms without classic buckets
	filter      *nameFilter `persist:"-"` // workflows.include/exclude; nil: every workflow

	runBuckets, queueBuckets []float64
	limits                   limits
}

// limits bound what Explorer's data can cost in series and bytes (README
// "Security and limits"); zero values: no bound.
type limits struct {
	maxWorkflows   int // workflows with their own series; the others share overflowKey's
	maxLabelLength int // bytes of a label value; longer ones are cut and end in cutMarker
}

// overflowKey holds the jobs of the workflows beyond limits.maxWorkflows.
var overflowKey = workflowKey{id: "__overflow__", name: "__overflow__"}

// cutMarker ends a label value cut to limits.maxLabelLength.
const cutMarker = "…"

// key is the series key of j's workflow within the limits, and whether a
// label value was cut.
func (s *state) key(j explorer.Job) (workflowKey, bool) {
	id, cutID := cutLabel(j.WorkflowID, s.limits.maxLabelLength)
	name, cutName := cutLabel(j.WorkflowName, s.limits.maxLabelLength)
	k := workflowKey{id, name}
	if _, ok := s.workflows[k]; ok || s.limits.maxWorkflows <= 0 || len(s.workflows) < s.limits.maxWorkflows {
		return k, cutID || cutName
	}
	return overflowKey, false
}

// cutLabel cuts v to at most n bytes (n > 0), on a UTF-8 boundary, ending
// in cutMarker, and says whether it did.
func cutLabel(v string, n int) (string, bool) {
	if n <= 0 || len(v) <= n {
		return v, false
	}
	keep := max(n-len(cutMarker), 0)
	for keep > 0 && !utf8.RuneStart(v[keep]) {
		keep--
	}
	if n < len(cutMarker) {
		return v[:keep], true
	}
	return v[:keep] + cutMarker, true
}

func newState(runBuckets, queueBuckets []float64) *state {
	return &state{
		workflows:     map[workflowKey]*workflowStats{},
		unfinished:    map[int64]unfinishedJob{},
		finishedSince: map[int64]int64{},
		runBuckets:    runBuckets,
		queueBuckets:  queueBuckets,
	}
}

// clone returns a deep copy, so a sync can fail half-way without touching
// the state scrapes are served from.
func (s *state) clone() *state {
	c := newState(s.runBuckets, s.queueBuckets)
	c.floor, c.newest, c.limits = s.floor, s.newest, s.limits
	for k, w := range s.workflows {
		cw := *w
		for i := range cw.run {
			cw.run[i] = w.run[i].clone()
		}
		cw.queue = w.queue.clone()
		c.workflows[k] = &cw
	}
	c.tasks, c.dropClassic, c.filter = s.tasks.clone(), s.dropClassic, s.filter
	maps.Copy(c.unfinished, s.unfinished)
	maps.Copy(c.finishedSince, s.finishedSince)
	return c
}

func (s *state) stats(k workflowKey) *workflowStats {
	w, ok := s.workflows[k]
	if !ok {
		w = &workflowStats{queue: newJobHistogram(s.queueBuckets)}
		for i := range w.run {
			w.run[i] = newJobHistogram(s.runBuckets)
		}
		s.workflows[k] = w
	}
	return w
}

// observe folds in a job as the API shows it now. It is idempotent: showing
// the same job again, in the same or a later state, counts it once.
func (s *state) observe(j explorer.Job) {
	if !s.filter.keeps(j.WorkflowName) {
		// Excluded: counted nowhere, kept nowhere. Only the listings' start
		// moves on past it, or a filter that excludes the busy workflows
		// would make every incremental listing start further back.
		s.newest = max(s.newest, j.CreateTime)
		return
	}
	key, cut := s.key(j)
	u, known := s.unfinished[j.ID]
	_, counted := s.finishedSince[j.ID]
	switch {
	case known:
		s.changed = s.changed || u.key != key || u.status != j.Status || u.runBegin != j.RunBeginTime
	case counted:
		return // terminal and counted already
	default:
		s.changed = true
		u = unfinishedJob{createTime: j.CreateTime}
		s.newest = max(s.newest, j.CreateTime)
	}
	w := s.stats(key)
	w.cut = w.cut || cut
	if !known {
		w.created++
	}
	u.key, u.status, u.runBegin = key, j.Status, j.RunBeginTime
	if !u.queued && j.RunBeginTime > 0 {
		w.queue.observeJob(max(0, subSat(j.RunBeginTime, j.CreateTime)), jobRef{j.RunBeginTime, j.ID})
		u.queued = true
	}
	if !explorer.IsTerminal(j.Status) {
		s.unfinished[j.ID] = u
		return
	}
	if known {
		delete(s.unfinished, j.ID)
	}
	if j.CreateTime >= s.floor {
		s.finishedSince[j.ID] = j.CreateTime
	}
	i := terminalIndex(j.Status)
	w.terminal[i]++
	w.finished[i]++
	runMs := int64(-1)
	if j.RunBeginTime > 0 && j.RunEndTime >= j.RunBeginTime {
		runMs = j.RunEndTime - j.RunBeginTime
		w.run[i].observeJob(runMs, jobRef{j.RunEndTime, j.ID})
	}
	w.lastFinishMs[i] = max(w.lastFinishMs[i], j.RunEndTime)
	if ref := refOf(j); !w.last[i].seen || ref.after(w.last[i].ref) {
		w.last[i] = lastJob{seen: true, ref: ref, runMs: runMs}
	}
	if s.tasks != nil {
		s.tasks.jobFinished(j, key)
	}
}

// forget drops an unfinished job Explorer no longer has. Counters keep it.
func (s *state) forget(id int64) {
	delete(s.unfinished, id)
	s.changed = true
}

// horizon is where listings are anchored: the newest createTime seen that
// is not after nowMs, the exporter's clock. One job created "in the future"
// (clock skew, a bogus year 9999) must not move the listings past the jobs
// Explorer creates now, whether Explorer's clock runs ahead of the
// exporter's or behind it (by less than the look-back, whose jobs are the
// ones known here). Without any such job, nowMs.
func (s *state) horizon(nowMs int64) int64 {
	if s.newest <= nowMs {
		return s.newest
	}
	h, found := int64(0), false
	for _, t := range s.finishedSince {
		if t <= nowMs && (!found || t > h) {
			h, found = t, true
		}
	}
	for _, u := range s.unfinished {
		if u.createTime <= nowMs && (!found || u.createTime > h) {
			h, found = u.createTime, true
		}
	}
	if !found {
		return nowMs
	}
	return h
}

// listFrom is where the next incremental listing starts: overlap before the
// horizon (jobs can become visible late), or earlier, to the oldest
// unfinished job created within lookback of the horizon, so that one
// listing also refreshes those. Never below floor, where dedup ends.
func (s *state) listFrom(overlapMs, lookbackMs, nowMs int64) int64 {
	h := s.horizon(nowMs)
	from := subSat(h, overlapMs)
	for _, u := range s.unfinished {
		if u.createTime >= subSat(h, lookbackMs) && u.createTime < from {
			from = u.createTime
		}
	}
	return max(from, s.floor, 0)
}

// raiseFloor forgets the finished jobs below a new floor; floors only rise.
func (s *state) raiseFloor(floor int64) {
	s.floor = max(s.floor, floor)
	for id, t := range s.finishedSince {
		if t < s.floor {
			delete(s.finishedSince, id)
		}
	}
}

// keepCountersFrom makes s, a state rebuilt from the full history, never show
// a counter below what old showed: after jobs were deleted in Explorer, the
// counters keep their old values instead of dropping. Gauges follow s.
func (s *state) keepCountersFrom(old *state) {
	for k, w := range s.workflows {
		o, ok := old.workflows[k]
		if !ok {
			continue
		}
		w.created = max(w.created, o.created)
		for i := range w.finished {
			w.finished[i] = max(w.finished[i], o.finished[i])
			w.run[i] = w.run[i].atLeast(o.run[i])
		}
		w.queue = w.queue.atLeast(o.queue)
	}
}

// subSat is a - b, saturated at the int64 range: Explorer's times are
// untrusted, and a bogus one must not wrap a duration around.
func subSat(a, b int64) int64 {
	d := a - b
	switch {
	case b < 0 && d < a: // overflowed upwards
		return math.MaxInt64
	case b > 0 && d > a: // overflowed downwards
		return math.MinInt64
	}
	return d
}
