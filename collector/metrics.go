package collector

import (
	"context"
	"io"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

const namespace = "nebula_explorer"

// The sync's health, as const metrics of a per-scrape registry.
var (
	upDesc           = desc("up", "1 when the last sync with Explorer fully succeeded, else 0.")
	lastSuccessDesc  = desc("last_sync_success_timestamp_seconds", "When the last fully successful sync with Explorer finished, as a Unix timestamp in seconds.")
	syncDurationDesc = desc("sync_duration_seconds", "How long the last sync with Explorer took, in seconds.")
	syncRequestsDesc = desc("sync_api_requests", "API requests the last sync with Explorer made.")
	createAheadDesc  = desc("job_create_time_ahead_seconds", "How far the latest createTime Explorer lists lies ahead of the exporter's clock, in seconds, as of the last good sync; 0 when none does. More than a few seconds means clock skew or a bogus createTime.")
)

// Totals of the last good sync's state, without workflow labels: a few
// const metrics per scrape, beside the cached job metrics.
var (
	workflowsDesc        = desc("workflows", "Workflows whose metrics are exported now (after the workflows.include/exclude filters).")
	taskBacklogDesc      = desc("task_backlog_jobs", "Finished jobs whose tasks wait for their detail (GET jobs/<id>), fetched tasks.max_requests_per_sync per sync.")
	taskInvalidTimesDesc = desc("task_invalid_times_total", "Tasks of finished jobs whose run times are not RFC 3339: counted in tasks_finished_total, not observed in task_run_duration_seconds.")
	taskSkippedDesc      = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "task_jobs_skipped_total"),
		"Finished jobs whose tasks were given up: the backlog was full (backlog_full), or their detail failed three times (detail_failed).", []string{"reason"}, nil)
	cutTaskNamesDesc = desc("task_names_truncated", "Task series exported now whose task label value was cut to limits.max_label_length bytes (it ends in \"…\").")
	cutLabelsDesc    = desc("workflows_label_truncated", "Workflows exported now whose workflow or workflow_id label value was cut to limits.max_label_length bytes (it ends in \"…\").")
)

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
}

// family is one job metric. The job metrics are written straight from the
// state (see walk), not through const metrics and a registry, which cost
// several times as much at 1,000 workflows.
type family struct {
	name, help string
	typ        dto.MetricType
}

func jobFamily(name, help string, typ dto.MetricType) *family {
	return &family{prometheus.BuildFQName(namespace, "", name), help, typ}
}

// In name order, the order walk emits them in.
var (
	queueFamily         = jobFamily("job_queue_duration_seconds", "Time started jobs waited before running (runBeginTime - createTime), in seconds.", dto.MetricType_HISTOGRAM)
	runFamily           = jobFamily("job_run_duration_seconds", "Run time of finished jobs (runEndTime - runBeginTime), in seconds.", dto.MetricType_HISTOGRAM)
	jobsFamily          = jobFamily("jobs", "Jobs Explorer lists in each status now.", dto.MetricType_GAUGE)
	createdFamily       = jobFamily("jobs_created_total", "Jobs created, over the whole history Explorer lists.", dto.MetricType_COUNTER)
	finishedFamily      = jobFamily("jobs_finished_total", "Jobs that reached a terminal status (success, failed, interrupted).", dto.MetricType_COUNTER)
	taskRunFamily       = jobFamily("task_run_duration_seconds", "Run time of the tasks of finished jobs (runEndTime - runBeginTime), in seconds, by the task's terminal status.", dto.MetricType_HISTOGRAM)
	tasksFinishedFamily = jobFamily("tasks_finished_total", "Tasks of finished jobs that ended in each terminal status.", dto.MetricType_COUNTER)
	lastFinishFamily    = jobFamily("workflow_last_finish_timestamp_seconds", "Latest runEndTime of the workflow's jobs in each terminal status, as a Unix timestamp in seconds.", dto.MetricType_GAUGE)
	lastJobIDFamily     = jobFamily("workflow_last_job_id", "Id of the workflow's latest job in each terminal status (latest: greatest runEndTime, or createTime without one; ties to the greater id).", dto.MetricType_GAUGE)
	lastJobRunFamily    = jobFamily("workflow_last_job_run_duration_seconds", "Run time of the workflow's latest terminal job (runEndTime - runBeginTime), in seconds; absent when it has none.", dto.MetricType_GAUGE)
	lastJobStatusFamily = jobFamily("workflow_last_job_status", "1 for the terminal status of the workflow's latest terminal job, 0 for the other terminal statuses.", dto.MetricType_GAUGE)
	oldestRunningFamily = jobFamily("workflow_oldest_running_start_timestamp_seconds", "Earliest runBeginTime of the workflow's running jobs, as a Unix timestamp in seconds.", dto.MetricType_GAUGE)
	oldestCreateFamily  = jobFamily("workflow_oldest_unfinished_create_timestamp_seconds", "Earliest createTime of the workflow's jobs in each non-terminal status, as a Unix timestamp in seconds.", dto.MetricType_GAUGE)
)

// status is a status label and its code (-1 for unknown).
type status struct {
	label string
	code  int
}

// statusesByLabel are the statuses in label order, the order of their
// samples; terminalByLabel the terminal ones among them.
var statusesByLabel, terminalByLabel = func() (all, terminal []status) {
	all = []status{{explorer.StatusUnknown, -1}}
	for code, label := range explorer.StatusLabels {
		all = append(all, status{label, code})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].label < all[j].label })
	for _, st := range all {
		if explorer.IsTerminal(st.code) {
			terminal = append(terminal, st)
		}
	}
	return all, terminal
}()

// series are the labels of a sample: its workflow, and its status and task
// ("" for the metrics without that label).
type series struct {
	key          workflowKey
	status, task string
}

// emitter receives the samples of the job metrics.
type emitter interface {
	value(f *family, l series, v float64)
	histogram(f *family, l series, h *histogram)
}

// unknownSlot is the index of the unknown status in workflowRow.unfinished;
// the documented codes index it directly.
const unknownSlot = len(explorer.StatusLabels)

func statusSlot(code int) int {
	if code >= 0 && code < unknownSlot {
		return code
	}
	return unknownSlot
}

// workflowRow is one workflow's series, computed once per walk: its
// aggregates and a summary of its unfinished jobs.
type workflowRow struct {
	key           workflowKey
	stats         *workflowStats
	unfinished    [unknownSlot + 1]float64 // jobs by statusSlot
	oldestRunning int64                    // earliest runBegin of a running job; 0: none
	oldestCreate  [unknownSlot + 1]int64   // earliest createTime by statusSlot; valid where unfinished > 0
}

// jobs is the value of the jobs gauge for a status, and whether the series exists.
func (r *workflowRow) jobs(st status) (float64, bool) {
	if explorer.IsTerminal(st.code) {
		return float64(r.stats.terminal[terminalIndex(st.code)]), true
	}
	n := r.unfinished[statusSlot(st.code)]
	return n, n > 0 || st.label != explorer.StatusUnknown // unknown appears only when seen
}

// rows returns the workflows of s in label order (workflow, workflow_id).
func rows(s *state) []workflowRow {
	// observe makes a stats entry for every workflow it sees, so this lists them all.
	out := make([]workflowRow, 0, len(s.workflows))
	for k, w := range s.workflows {
		out = append(out, workflowRow{key: k, stats: w})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.name != out[j].key.name {
			return out[i].key.name < out[j].key.name
		}
		return out[i].key.id < out[j].key.id
	})
	index := make(map[workflowKey]int, len(out))
	for i := range out {
		index[out[i].key] = i
	}
	for _, u := range s.unfinished {
		r := &out[index[u.key]]
		slot := statusSlot(u.status)
		if r.unfinished[slot] == 0 || u.createTime < r.oldestCreate[slot] {
			r.oldestCreate[slot] = u.createTime
		}
		r.unfinished[slot]++
		if u.status == explorer.StatusRunning && u.runBegin > 0 && (r.oldestRunning == 0 || u.runBegin < r.oldestRunning) {
			r.oldestRunning = u.runBegin
		}
	}
	return out
}

// walk emits every job metric of s: families in name order, the samples of a
// family in label order (status, workflow, workflow_id), as a registry would
// sort them. Which series exist is decided here and only here.
func walk(s *state, e emitter) {
	rs := rows(s)
	for i := range rs {
		e.histogram(queueFamily, series{rs[i].key, "", ""}, &rs[i].stats.queue)
	}
	for _, st := range terminalByLabel {
		for i := range rs {
			e.histogram(runFamily, series{rs[i].key, st.label, ""}, &rs[i].stats.run[terminalIndex(st.code)])
		}
	}
	for _, st := range statusesByLabel {
		for i := range rs {
			if n, ok := rs[i].jobs(st); ok {
				e.value(jobsFamily, series{rs[i].key, st.label, ""}, n)
			}
		}
	}
	for i := range rs {
		e.value(createdFamily, series{rs[i].key, "", ""}, float64(rs[i].stats.created))
	}
	for _, st := range terminalByLabel {
		for i := range rs {
			e.value(finishedFamily, series{rs[i].key, st.label, ""}, float64(rs[i].stats.finished[terminalIndex(st.code)]))
		}
	}
	tasks := s.tasks.sorted()
	for _, st := range terminalByLabel {
		for _, ts := range tasks {
			e.histogram(taskRunFamily, series{ts.key, st.label, ts.name}, &ts.stats.run[terminalIndex(st.code)])
		}
	}
	for _, st := range terminalByLabel {
		for _, ts := range tasks {
			e.value(tasksFinishedFamily, series{ts.key, st.label, ts.name}, float64(ts.stats.finished[terminalIndex(st.code)]))
		}
	}
	for _, st := range terminalByLabel {
		for i := range rs {
			if t := rs[i].stats.lastFinishMs[terminalIndex(st.code)]; t > 0 {
				e.value(lastFinishFamily, series{rs[i].key, st.label, ""}, float64(t)/1000)
			}
		}
	}
	for _, st := range terminalByLabel {
		for i := range rs {
			if l := rs[i].stats.last[terminalIndex(st.code)]; l.seen {
				e.value(lastJobIDFamily, series{rs[i].key, st.label, ""}, float64(l.ref.id))
			}
		}
	}
	for i := range rs {
		if latest := rs[i].stats.latest(); latest >= 0 && rs[i].stats.last[latest].runMs >= 0 {
			e.value(lastJobRunFamily, series{rs[i].key, "", ""}, float64(rs[i].stats.last[latest].runMs)/1000)
		}
	}
	for _, st := range terminalByLabel {
		for i := range rs {
			if latest := rs[i].stats.latest(); latest >= 0 {
				e.value(lastJobStatusFamily, series{rs[i].key, st.label, ""}, oneIf(latest == terminalIndex(st.code)))
			}
		}
	}
	for i := range rs {
		if t := rs[i].oldestRunning; t > 0 {
			e.value(oldestRunningFamily, series{rs[i].key, "", ""}, float64(t)/1000)
		}
	}
	for _, st := range statusesByLabel {
		if explorer.IsTerminal(st.code) {
			continue
		}
		for i := range rs {
			if slot := statusSlot(st.code); rs[i].unfinished[slot] > 0 {
				e.value(oldestCreateFamily, series{rs[i].key, st.label, ""}, float64(rs[i].oldestCreate[slot])/1000)
			}
		}
	}
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// render returns the job metrics of s as metric families: the reference
// form, for the formats other than text and for Gather. It stops with ctx's
// error when ctx ends first.
func render(ctx context.Context, s *state) ([]*dto.MetricFamily, error) {
	r := familyEmitter{dropClassic: s.dropClassic}
	d := &deadline{emitter: &r, ctx: ctx}
	walk(s, d)
	return r.families, d.err
}

// deadline passes the samples on to an emitter until ctx ends (checked at
// the first sample and every deadlineEvery after), then drops them: walk runs to its end cheaply,
// emitting nothing, and err says why the output is cut short.
type deadline struct {
	emitter
	ctx context.Context
	n   int
	err error
}

const deadlineEvery = 1024

func (d *deadline) live() bool {
	if d.n++; d.err == nil && d.n%deadlineEvery == 1 {
		d.err = d.ctx.Err()
	}
	return d.err == nil
}

func (d *deadline) value(f *family, l series, v float64) {
	if d.live() {
		d.emitter.value(f, l, v)
	}
}

func (d *deadline) histogram(f *family, l series, h *histogram) {
	if d.live() {
		d.emitter.histogram(f, l, h)
	}
}

// writeFamilies encodes the job metrics of s in format to w, one family at
// a time: only the family being written is ever rendered whole.
func writeFamilies(ctx context.Context, w io.Writer, s *state, format expfmt.Format) error {
	r := familyEmitter{dropClassic: s.dropClassic, done: expfmt.NewEncoder(w, format).Encode}
	d := &deadline{emitter: &r, ctx: ctx}
	walk(s, d)
	if d.err != nil {
		return d.err
	}
	r.flush()
	return r.err
}

type familyEmitter struct {
	families    []*dto.MetricFamily
	dropClassic bool
	// done, if set, takes each family once it is complete (when the next
	// one starts, or at flush), and the family is dropped.
	done  func(*dto.MetricFamily) error
	err   error
	pairs map[[2]string]*dto.LabelPair // see pair
}

// pair returns the label pair name=value, made once per emitter and shared
// by every metric that carries it (encoders only read them): a family of
// 1,000 workflows' histograms weighs a third less.
func (r *familyEmitter) pair(name, value string) *dto.LabelPair {
	k := [2]string{name, value}
	p, ok := r.pairs[k]
	if !ok {
		if r.pairs == nil {
			r.pairs = map[[2]string]*dto.LabelPair{}
		}
		p = &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
		r.pairs[k] = p
	}
	return p
}

// flush hands the family under way to done.
func (r *familyEmitter) flush() {
	if r.done == nil || len(r.families) == 0 {
		return
	}
	if r.err == nil {
		r.err = r.done(r.families[0])
	}
	r.families[0], r.families = nil, r.families[:0]
}

func (r *familyEmitter) metric(f *family, l series) *dto.Metric {
	if n := len(r.families); n == 0 || r.families[n-1].GetName() != f.name {
		r.flush()
		r.families = append(r.families, &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help), Type: f.typ.Enum()})
	}
	labels := make([]*dto.LabelPair, 0, 4) // in name order
	if l.status != "" {
		labels = append(labels, r.pair("status", l.status))
	}
	if l.task != "" {
		labels = append(labels, r.pair("task", l.task))
	}
	labels = append(labels, r.pair("workflow", l.key.name), r.pair("workflow_id", l.key.id))
	m := &dto.Metric{Label: labels}
	fam := r.families[len(r.families)-1]
	fam.Metric = append(fam.Metric, m)
	return m
}

func (r *familyEmitter) value(f *family, l series, v float64) {
	m := r.metric(f, l)
	if f.typ == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: proto.Float64(v)}
	} else {
		m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
	}
}

func (r *familyEmitter) histogram(f *family, l series, h *histogram) {
	r.metric(f, l).Histogram = h.proto(r.dropClassic)
}

// health is the state of the last completed sync, as metrics.
type health syncHealth

func (h health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, lastSuccessDesc, syncDurationDesc, syncRequestsDesc, createAheadDesc} {
		ch <- d
	}
}

func (h health) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if h.ok {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	if !h.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(h.lastSuccess.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(createAheadDesc, prometheus.GaugeValue, float64(h.createAheadMs)/1000)
	}
	if h.duration > 0 {
		ch <- prometheus.MustNewConstMetric(syncDurationDesc, prometheus.GaugeValue, h.duration.Seconds())
		ch <- prometheus.MustNewConstMetric(syncRequestsDesc, prometheus.GaugeValue, float64(h.requests))
	}
}

// totals are the state-wide metrics of a synced state.
type totals struct{ s *state }

func (t totals) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workflowsDesc, taskBacklogDesc, taskInvalidTimesDesc, taskSkippedDesc, cutLabelsDesc, cutTaskNamesDesc} {
		ch <- d
	}
}

func (t totals) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(workflowsDesc, prometheus.GaugeValue, float64(len(t.s.workflows)))
	cut := 0
	for _, w := range t.s.workflows {
		if w.cut {
			cut++
		}
	}
	ch <- prometheus.MustNewConstMetric(cutLabelsDesc, prometheus.GaugeValue, float64(cut))
	if tasks := t.s.tasks; tasks != nil {
		ch <- prometheus.MustNewConstMetric(taskBacklogDesc, prometheus.GaugeValue, float64(len(tasks.backlog)))
		ch <- prometheus.MustNewConstMetric(taskInvalidTimesDesc, prometheus.CounterValue, float64(tasks.invalidTimes))
		cutTasks := 0
		for _, names := range tasks.series {
			for _, st := range names {
				if st.cut {
					cutTasks++
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(cutTaskNamesDesc, prometheus.GaugeValue, float64(cutTasks))
		for reason, n := range tasks.skipped {
			ch <- prometheus.MustNewConstMetric(taskSkippedDesc, prometheus.CounterValue, float64(n), skipReasons[reason])
		}
	}
}
