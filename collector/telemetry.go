package collector

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// Telemetry is the exporter's own instrumentation: syncs and API requests
// since the process started. It outlives collectors (a reload replaces the
// collector, not these counters), so main registers one and hands it to
// each collector and to the Explorer client's OnRequest hook.
type Telemetry struct {
	syncs          *prometheus.CounterVec
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	invalidAnswers *prometheus.CounterVec
}

// invalidAnswerReasons are the reasons the client gives an answer that does
// not match its request (explorer.InvalidAnswerError.Reason), present at 0.
var invalidAnswerReasons = []string{"not_json", "no_code", "no_data", "bad_data", "too_large", "duplicate_key", "null_item",
	"item_outside_filter", "page_size", "order", "page_ignored", "wrong_job"}

// Sync kinds and results, the label values of syncs_total.
const (
	syncFull        = "full"
	syncIncremental = "incremental"
)

// NewTelemetry returns the counters with their usual series present at 0,
// so rate() and increase() see the first increment.
func NewTelemetry() *Telemetry {
	t := &Telemetry{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "syncs_total",
			Help: "Syncs with Explorer since the exporter started, by kind (full, incremental) and result (success, failure).",
		}, []string{"kind", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "Requests sent to Explorer since the exporter started, by endpoint (connect, jobs, job) and result (success, an Explorer error name, http_<status>, network, timeout, invalid_answer).",
		}, []string{"endpoint", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help:    "Latency of requests to Explorer, in seconds, by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
			// Native buckets too, for Prometheus servers that store them.
			NativeHistogramBucketFactor: 1.1,
		}, []string{"endpoint"}),
		invalidAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "invalid_answers_total",
			Help: "Syncs failed because an answer of Explorer did not match the request (a job outside the listing's filter, another job's detail, not the JSON asked for, too large, ...), by reason.",
		}, []string{"reason"}),
	}
	for _, reason := range invalidAnswerReasons {
		t.invalidAnswers.WithLabelValues(reason)
	}
	for _, kind := range []string{syncFull, syncIncremental} {
		for _, result := range []string{"success", "failure"} {
			t.syncs.WithLabelValues(kind, result)
		}
	}
	for _, endpoint := range []string{"connect", "jobs", "job"} {
		t.requests.WithLabelValues(endpoint, "success")
		t.latency.WithLabelValues(endpoint)
	}
	return t
}

// ObserveRequest counts one request to Explorer; it is the client's OnRequest hook.
func (t *Telemetry) ObserveRequest(endpoint, result string, d time.Duration) {
	if t == nil {
		return
	}
	t.requests.WithLabelValues(endpoint, result).Inc()
	t.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// observeSyncError counts a sync that failed on an answer not matching its
// request, by the client's reason.
func (t *Telemetry) observeSyncError(err error) {
	var invalid *explorer.InvalidAnswerError
	if t != nil && errors.As(err, &invalid) {
		t.invalidAnswers.WithLabelValues(invalid.Reason).Inc()
	}
}

// observeSync counts one completed sync.
func (t *Telemetry) observeSync(full, ok bool) {
	if t == nil {
		return
	}
	kind, result := syncIncremental, "success"
	if full {
		kind = syncFull
	}
	if !ok {
		result = "failure"
	}
	t.syncs.WithLabelValues(kind, result).Inc()
}

func (t *Telemetry) Describe(ch chan<- *prometheus.Desc) {
	t.syncs.Describe(ch)
	t.requests.Describe(ch)
	t.latency.Describe(ch)
	t.invalidAnswers.Describe(ch)
}

func (t *Telemetry) Collect(ch chan<- prometheus.Metric) {
	t.syncs.Collect(ch)
	t.requests.Collect(ch)
	t.latency.Collect(ch)
	t.invalidAnswers.Collect(ch)
}
