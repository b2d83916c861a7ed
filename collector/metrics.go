package collector

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

const namespace = "nebula_explorer"

var (
	workflowLabels = []string{"workflow", "workflow_id"}
	statusLabels   = []string{"workflow", "workflow_id", "status"}

	upDesc            = desc("up", "1 when the last sync with Explorer fully succeeded, else 0.", nil)
	jobsDesc          = desc("jobs", "Jobs Explorer lists in each status now.", statusLabels)
	createdDesc       = desc("jobs_created_total", "Jobs created, over the whole history Explorer lists.", workflowLabels)
	finishedDesc      = desc("jobs_finished_total", "Jobs that reached a terminal status (success, failed, interrupted).", statusLabels)
	runDesc           = desc("job_run_duration_seconds", "Run time of finished jobs (runEndTime - runBeginTime), in seconds.", statusLabels)
	queueDesc         = desc("job_queue_duration_seconds", "Time started jobs waited before running (runBeginTime - createTime), in seconds.", workflowLabels)
	lastFinishDesc    = desc("workflow_last_finish_timestamp_seconds", "Latest runEndTime of the workflow's jobs in each terminal status, as a Unix timestamp in seconds.", statusLabels)
	oldestRunningDesc = desc("workflow_oldest_running_start_timestamp_seconds", "Earliest runBeginTime of the workflow's running jobs, as a Unix timestamp in seconds.", workflowLabels)
	lastSuccessDesc   = desc("last_sync_success_timestamp_seconds", "When the last fully successful sync with Explorer finished, as a Unix timestamp in seconds.", nil)
	syncDurationDesc  = desc("sync_duration_seconds", "How long the last sync with Explorer took, in seconds.", nil)
	syncRequestsDesc  = desc("sync_api_requests", "API requests the last sync with Explorer made.", nil)
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// render builds the job metrics of a state once per sync; every scrape until
// the next sync serves the same slice.
func render(s *state) []prometheus.Metric {
	pendingByStatus := map[workflowKey]map[string]float64{}
	oldestRunning := map[workflowKey]int64{}
	for _, u := range s.unfinished {
		counts := pendingByStatus[u.key]
		if counts == nil {
			counts = map[string]float64{}
			pendingByStatus[u.key] = counts
		}
		counts[explorer.StatusLabel(u.status)]++
		if u.status == explorer.StatusRunning && u.runBegin > 0 {
			if t, ok := oldestRunning[u.key]; !ok || u.runBegin < t {
				oldestRunning[u.key] = u.runBegin
			}
		}
	}
	// A workflow whose only jobs are unfinished has no stats entry yet
	// only if it was never observed; observe always creates one, so the
	// workflows map lists every workflow.
	keys := make([]workflowKey, 0, len(s.workflows))
	for k := range s.workflows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].id < keys[j].id
	})

	out := make([]prometheus.Metric, 0, len(keys)*20)
	for _, k := range keys {
		w, pending := s.workflows[k], pendingByStatus[k]
		for code, status := range explorer.StatusLabels {
			n := pending[status]
			if explorer.IsTerminal(code) {
				n = float64(w.terminal[terminalIndex(code)])
			}
			out = append(out, prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, n, k.name, k.id, status))
		}
		if n := pending[explorer.StatusUnknown]; n > 0 {
			out = append(out, prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, n, k.name, k.id, explorer.StatusUnknown))
		}
		out = append(out, prometheus.MustNewConstMetric(createdDesc, prometheus.CounterValue, float64(w.created), k.name, k.id))
		for i, code := range terminalStatuses {
			status := explorer.StatusLabel(code)
			out = append(out,
				prometheus.MustNewConstMetric(finishedDesc, prometheus.CounterValue, float64(w.finished[i]), k.name, k.id, status),
				prometheus.MustNewConstHistogram(runDesc, w.run[i].count, w.run[i].sum(), w.run[i].cumulative(), k.name, k.id, status))
			if w.lastFinishMs[i] > 0 {
				out = append(out, prometheus.MustNewConstMetric(lastFinishDesc, prometheus.GaugeValue, float64(w.lastFinishMs[i])/1000, k.name, k.id, status))
			}
		}
		out = append(out, prometheus.MustNewConstHistogram(queueDesc, w.queue.count, w.queue.sum(), w.queue.cumulative(), k.name, k.id))
		if t, ok := oldestRunning[k]; ok {
			out = append(out, prometheus.MustNewConstMetric(oldestRunningDesc, prometheus.GaugeValue, float64(t)/1000, k.name, k.id))
		}
	}
	return out
}

// scrape is what one scrape serves: the rendered job metrics of the last good
// sync and the health of the last sync.
type scrape struct {
	metrics []prometheus.Metric
	health  syncHealth
}

func (s scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, jobsDesc, createdDesc, finishedDesc, runDesc, queueDesc,
		lastFinishDesc, oldestRunningDesc, lastSuccessDesc, syncDurationDesc, syncRequestsDesc} {
		ch <- d
	}
}

func (s scrape) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if s.health.ok {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	if !s.health.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(s.health.lastSuccess.UnixNano())/1e9)
	}
	if s.health.duration > 0 {
		ch <- prometheus.MustNewConstMetric(syncDurationDesc, prometheus.GaugeValue, s.health.duration.Seconds())
		ch <- prometheus.MustNewConstMetric(syncRequestsDesc, prometheus.GaugeValue, float64(s.health.requests))
	}
	for _, m := range s.metrics {
		ch <- m
	}
}
