package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// needPrometheus returns a Prometheus binary and whether it is version 3:
// the one deploy/prometheus3.sh builds (as the deploy tests), or else
// Debian's 2.42. Without either, the test fails under CI and is skipped
// elsewhere.
func needPrometheus(t *testing.T) (path string, v3 bool) {
	t.Helper()
	path, err := localtest.Prometheus3("deploy/prometheus3.sh", "prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path, true
	}
	return localtest.NeedTool(t, "prometheus"), false
}

// runBuckets are powers of two, so every classic bucket is the union of two
// native ones (schema 1): a quantile's estimate from either lies in the same
// classic bucket.
var runBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// TestNativeHistogramsAndExemplarsInPrometheus scrapes the exporter with a
// real Prometheus, twice: in OpenMetrics, whose exemplars Prometheus must
// store with the job ids of the latest job of each bucket, and in protobuf,
// whose native histograms must agree with the classic buckets on count and
// quantiles, for jobs and tasks alike.
func TestNativeHistogramsAndExemplarsInPrometheus(t *testing.T) {
	promBinary, v3 := needPrometheus(t)
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	t.Cleanup(srv.Close)
	// 40 successful jobs of the last half hour, 0.5 s to 20 min long.
	now := time.Now().Add(-30 * time.Minute).UnixMilli()
	var jobs []explorer.Job
	for i := range 40 {
		create := now + int64(i)*20_000
		run := int64(500 * (1 + i*i*3/2))
		jobs = append(jobs, fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess,
			CreateTime: create, RunBeginTime: create + int64(i%7)*1000, RunEndTime: create + int64(i%7)*1000 + run}))
	}
	exporter := startExporter(t, configFor(srv.URL, "nebula")+"metrics:\n  run_duration_buckets: "+jsonList(runBuckets)+
		"\n  task_duration_buckets: "+jsonList(runBuckets)+"\n")

	promAddr := localtest.FreeAddr(t)
	scrape := func(name, extra string) string {
		return fmt.Sprintf("  - job_name: %s\n    scrape_interval: 1s\n%s    static_configs: [{targets: [%q]}]\n", name, extra, exporter.addr)
	}
	var config, feature string
	if v3 {
		config = scrape("openmetrics", "    scrape_protocols: [OpenMetricsText1.0.0]\n") +
			scrape("native", "    scrape_native_histograms: true\n    always_scrape_classic_histograms: true\n    scrape_protocols: [PrometheusProto]\n")
		feature = "exemplar-storage"
	} else {
		// 2.42 asks for protobuf first with native histograms on, and
		// then stores no classic buckets: what the classic series would
		// say is computed here instead.
		config = scrape("native", "")
		feature = "native-histograms,exemplar-storage"
	}
	cmd := exec.Command(promBinary, "--config.file="+writeFile(t, "prometheus.yml", "scrape_configs:\n"+config),
		"--storage.tsdb.path="+filepath.Join(t.TempDir(), "data"), "--web.listen-address="+promAddr, "--enable-feature="+feature)
	var promLog syncBuffer
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	api := func(path string, params url.Values, out any) error {
		resp, err := http.Get("http://" + promAddr + path + "?" + params.Encode())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var answer struct {
			Status string          `json:"status"`
			Error  string          `json:"error"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			return err
		}
		if answer.Status != "success" {
			return fmt.Errorf("%s: %s", path, answer.Error)
		}
		return json.Unmarshal(answer.Data, out)
	}
	// query returns the value of a query's single sample; ok is false while there is none.
	query := func(q string) (v float64, ok bool) {
		t.Helper()
		var data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		if err := api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil || len(data.Result) != 1 {
			return 0, false
		}
		v, err := strconv.ParseFloat(data.Result[0].Value[1].(string), 64)
		return v, err == nil
	}
	// One generous deadline for all the waits below: on a loaded machine
	// Prometheus takes its time to start, and a scrape may time out (its
	// timeout is the 1 s interval) until the exporter's first sync is done.
	// Once the series are there, every wait ends at its first poll.
	const patience = 3 * time.Minute
	deadline := time.Now().Add(patience)
	eventually := func(what string, q string) float64 {
		t.Helper()
		for ; time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if v, ok := query(q); ok {
				return v
			}
		}
		t.Fatalf("%s: no result for %s within %v of Prometheus starting", what, q, patience)
		return 0
	}

	const run = `nebula_explorer_job_run_duration_seconds{job="native",status="success"}`
	const classicRun = `nebula_explorer_job_run_duration_seconds_bucket{job="native",status="success"}`
	t.Run("histogram_count of the native series equals the classic count", func(t *testing.T) {
		native := eventually("native job run histogram", "histogram_count("+run+")")
		classic := float64(len(jobs))
		if v3 {
			classic = eventually("classic job run count", `nebula_explorer_job_run_duration_seconds_count{job="native",status="success"}`)
		}
		if native != float64(len(jobs)) || classic != native {
			t.Errorf("histogram_count = %g, classic _count = %g, want %d", native, classic, len(jobs))
		}
	})
	t.Run("histogram_quantile of the native series falls in the classic bucket of the true quantile", func(t *testing.T) {
		var runs []float64
		for _, j := range jobs {
			runs = append(runs, float64(j.RunEndTime-j.RunBeginTime)/1000)
		}
		slices.Sort(runs)
		for _, q := range []float64{0.25, 0.5, 0.9} {
			native := eventually("native quantile", fmt.Sprintf("histogram_quantile(%g, %s)", q, run))
			truth := runs[int(math.Ceil(q*float64(len(runs))))-1]
			classic := truth
			if v3 {
				classic = eventually("classic quantile", fmt.Sprintf("histogram_quantile(%g, %s)", q, classicRun))
			}
			i, _ := slices.BinarySearch(runBuckets, truth)
			lower, upper := 0.0, runBuckets[i]
			if i > 0 {
				lower = runBuckets[i-1]
			}
			if native < lower || native > upper || classic < lower || classic > upper {
				t.Errorf("q%g: native %g, classic %g; the true value %g is in the bucket (%g, %g]", q, native, classic, truth, lower, upper)
			}
		}
	})
	t.Run("task durations are native histograms too, agreeing with their classic count", func(t *testing.T) {
		const tasks = `nebula_explorer_task_run_duration_seconds{job="native",status="success",task="Query"}`
		native := eventually("native task histogram", "histogram_count("+tasks+")")
		classic := native
		if v3 {
			classic = eventually("classic task count", `nebula_explorer_task_run_duration_seconds_count{job="native",status="success",task="Query"}`)
		}
		if native == 0 || native != classic {
			t.Errorf("task histogram_count = %g, classic _count = %g", native, classic)
		}
	})
	t.Run("query_exemplars returns the latest job of each bucket", func(t *testing.T) {
		query, job := "nebula_explorer_job_run_duration_seconds_bucket", "openmetrics"
		if !v3 {
			query, job = "nebula_explorer_job_run_duration_seconds", "native" // exemplars of the native histogram
		}
		want := map[string]float64{} // job id -> run time, of the latest job of each classic bucket
		latest := map[int]explorer.Job{}
		for _, j := range jobs {
			i, _ := slices.BinarySearch(runBuckets, float64(j.RunEndTime-j.RunBeginTime)/1000)
			if l, ok := latest[i]; !ok || j.RunEndTime > l.RunEndTime || j.RunEndTime == l.RunEndTime && j.ID > l.ID {
				latest[i] = j
			}
		}
		for _, j := range latest {
			want[strconv.FormatInt(j.ID, 10)] = float64(j.RunEndTime-j.RunBeginTime) / 1000
		}
		params := url.Values{"query": {query + `{job="` + job + `",status="success"}`},
			"start": {strconv.FormatInt(time.Now().Add(-2*time.Hour).Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}}
		got := map[string]float64{}
		enough := len(want)
		if !v3 {
			enough = 1 // 2.42 keeps one exemplar per native histogram sample
		}
		for ; len(got) < enough && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			var data []struct {
				Exemplars []struct {
					Labels map[string]string `json:"labels"`
					Value  string            `json:"value"`
				} `json:"exemplars"`
			}
			if err := api("/api/v1/query_exemplars", params, &data); err != nil {
				t.Fatal(err)
			}
			for _, series := range data {
				for _, e := range series.Exemplars {
					v, _ := strconv.ParseFloat(e.Value, 64)
					got[e.Labels["job_id"]] = v
				}
			}
		}
		for id, v := range got {
			if w, ok := want[id]; !ok || v != w {
				t.Errorf("exemplar of job %s with run time %g; want the latest jobs of each bucket %v", id, v, want)
			}
		}
		if len(got) < enough {
			t.Errorf("exemplars (job id: run time) %v, want %v", got, want)
		}
	})
}

func jsonList(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
