package collector

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// TestLastJobAndOldestUnfinished: the latest job of each workflow (ties to
// the greater id, a job without runEndTime at its createTime) and the oldest
// unfinished job in each non-terminal status, then the same after a full
// resync that finds the latest job deleted.
func TestLastJobAndOldestUnfinished(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.FullResyncInterval = time.Nanosecond }) // every sync is a full one
	add := func(workflow, id string, status int, create, begin, end int64) explorer.Job {
		return e.fake.AddJob(explorer.Job{WorkflowID: id, WorkflowName: workflow, Status: status,
			CreateTime: t0 + create, RunBeginTime: begin, RunEndTime: end})
	}
	// bfs: the latest is the interrupted job that never ran: created when the
	// failed one ended, with a greater id, and without a run time.
	add("bfs", "1", explorer.StatusSuccess, 0, t0+1000, t0+10_000)
	add("bfs", "1", explorer.StatusFailed, 1000, t0+2000, t0+20_000)
	interrupted := add("bfs", "1", explorer.StatusInterrupted, 20_000, 0, 0)
	// pr: nothing finished yet, jobs waiting in every non-terminal status.
	add("pr", "2", explorer.StatusPreparing, 5000, 0, 0)
	add("pr", "2", explorer.StatusPreparing, 1000, 0, 0)
	add("pr", "2", explorer.StatusRunning, 3000, t0+4000, 0)
	add("pr", "2", explorer.StatusStopping, 4000, t0+4500, 0)
	add("pr", "2", 9, 6000, 0, 0)
	// wcc: two successes; the later one ran 2.5 s.
	add("wcc", "3", explorer.StatusSuccess, 0, t0+100, t0+30_000)
	add("wcc", "3", explorer.StatusSuccess, 100, t0+40_000, t0+42_500)

	e.mustSync(t)
	assertGolden(t, "last_job.prom", []byte(jobMetrics(t, e.col)))

	e.fake.DeleteJob(interrupted.ID)
	e.mustSync(t)
	assertGolden(t, "last_job_after_delete.prom", []byte(jobMetrics(t, e.col)))
}

// TestTelemetryCountsSyncs: syncs_total counts each sync once by kind and
// result, across collectors sharing one Telemetry (as across reloads).
func TestTelemetryCountsSyncs(t *testing.T) {
	telemetry := NewTelemetry()
	e := newTestEnv(t, func(o *Options) { o.Telemetry = telemetry })
	addHistory(e.fake, 4, t0)
	e.mustSync(t) // full
	e.mustSync(t) // incremental
	e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
	e.sync(t) // incremental, failed
	e.fake.SetQuirks(explorertest.Quirks{})
	e.col = e.newCollector(t) // a reload: a new collector, the same telemetry
	e.mustSync(t)             // full
	var b bytes.Buffer
	families, err := gatherOnly(telemetry, "nebula_explorer_syncs_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		expfmt.MetricFamilyToText(&b, f)
	}
	assertGolden(t, "telemetry_syncs.prom", b.Bytes())
}

// gatherOnly gathers c and keeps the named families.
func gatherOnly(c prometheus.Collector, names ...string) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	all, err := reg.Gather()
	var out []*dto.MetricFamily
	for _, f := range all {
		if slices.Contains(names, f.GetName()) {
			out = append(out, f)
		}
	}
	return out, err
}
