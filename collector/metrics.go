package collector

import (
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

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

// descNames keeps each description's name and help, for building families.
var descNames = map[*prometheus.Desc][2]string{}

func desc(name, help string, labels []string) *prometheus.Desc {
	fq := prometheus.BuildFQName(namespace, "", name)
	d := prometheus.NewDesc(fq, help, labels, nil)
	descNames[d] = [2]string{fq, help}
	return d
}

// render builds the job metrics of a state once per sync, straight into
// metric families (going through const metrics and a registry cost three
// times as much at 1,000 workflows). Families come sorted by name and their
// metrics by label values, as a registry would give them.
func render(s *state) []*dto.MetricFamily {
	pending := map[workflowKey]map[string]float64{}
	oldestRunning := map[workflowKey]int64{}
	for _, u := range s.unfinished {
		counts := pending[u.key]
		if counts == nil {
			counts = map[string]float64{}
			pending[u.key] = counts
		}
		counts[explorer.StatusLabel(u.status)]++
		if u.status == explorer.StatusRunning && u.runBegin > 0 {
			if t, ok := oldestRunning[u.key]; !ok || u.runBegin < t {
				oldestRunning[u.key] = u.runBegin
			}
		}
	}
	// observe makes a stats entry for every workflow it sees, so this lists them all.
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

	statuses := append([]string{}, explorer.StatusLabels[:]...)
	statuses = append(statuses, explorer.StatusUnknown)
	sort.Strings(statuses)
	jobs := family(jobsDesc, dto.MetricType_GAUGE)
	created := family(createdDesc, dto.MetricType_COUNTER)
	finished := family(finishedDesc, dto.MetricType_COUNTER)
	run := family(runDesc, dto.MetricType_HISTOGRAM)
	queue := family(queueDesc, dto.MetricType_HISTOGRAM)
	lastFinish := family(lastFinishDesc, dto.MetricType_GAUGE)
	oldest := family(oldestRunningDesc, dto.MetricType_GAUGE)
	for _, status := range statuses {
		code, terminal := terminalCode(status)
		for _, k := range keys {
			w, labels := s.workflows[k], workflowStatusLabels(k, status)
			n, seen := pending[k][status]
			switch {
			case terminal:
				i := terminalIndex(code)
				n = float64(w.terminal[i])
				finished.Metric = append(finished.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: proto.Float64(float64(w.finished[i]))}})
				run.Metric = append(run.Metric, &dto.Metric{Label: labels, Histogram: w.run[i].proto()})
				if w.lastFinishMs[i] > 0 {
					lastFinish.Metric = append(lastFinish.Metric, gauge(labels, float64(w.lastFinishMs[i])/1000))
				}
			case status == explorer.StatusUnknown && !seen:
				continue // unknown appears only when seen
			}
			jobs.Metric = append(jobs.Metric, gauge(labels, n))
		}
	}
	for _, k := range keys {
		w, labels := s.workflows[k], workflowLabelPairs(k)
		created.Metric = append(created.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: proto.Float64(float64(w.created))}})
		queue.Metric = append(queue.Metric, &dto.Metric{Label: labels, Histogram: w.queue.proto()})
		if t, ok := oldestRunning[k]; ok {
			oldest.Metric = append(oldest.Metric, gauge(labels, float64(t)/1000))
		}
	}
	out := []*dto.MetricFamily{jobs, created, finished, run, queue, lastFinish, oldest}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return slices.DeleteFunc(out, func(f *dto.MetricFamily) bool { return len(f.Metric) == 0 })
}

// terminalCode returns the status code of a terminal status label.
func terminalCode(status string) (int, bool) {
	for _, code := range terminalStatuses {
		if explorer.StatusLabel(code) == status {
			return code, true
		}
	}
	return 0, false
}

func family(d *prometheus.Desc, t dto.MetricType) *dto.MetricFamily {
	name, help := descNames[d][0], descNames[d][1]
	return &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: t.Enum()}
}

func gauge(labels []*dto.LabelPair, v float64) *dto.Metric {
	return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(v)}}
}

// Label pairs, sorted by name as the exposition wants them.
func workflowLabelPairs(k workflowKey) []*dto.LabelPair {
	return []*dto.LabelPair{{Name: proto.String("workflow"), Value: proto.String(k.name)}, {Name: proto.String("workflow_id"), Value: proto.String(k.id)}}
}

func workflowStatusLabels(k workflowKey, status string) []*dto.LabelPair {
	return append([]*dto.LabelPair{{Name: proto.String("status"), Value: proto.String(status)}}, workflowLabelPairs(k)...)
}

// health is the state of the last completed sync, as metrics.
type health syncHealth

func (h health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, lastSuccessDesc, syncDurationDesc, syncRequestsDesc} {
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
	}
	if h.duration > 0 {
		ch <- prometheus.MustNewConstMetric(syncDurationDesc, prometheus.GaugeValue, h.duration.Seconds())
		ch <- prometheus.MustNewConstMetric(syncRequestsDesc, prometheus.GaugeValue, float64(h.requests))
	}
}
