package explorertest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// Workflow is one workflow of a Workload.
type Workflow struct {
	ID   string // digits, like Explorer's workflow ids ("4216617528")
	Name string
}

// Workload generates a believable job history and its live changes.
// The same Seed (and Now) gives the same jobs; Step's changes are the same
// for the same sequence of calls. Step keeps its state in the Workload: use
// one Workload value (by pointer) per simulated Explorer.
type Workload struct {
	Workflows int       // how many workflows (at least 1)
	Seed      int64     // the seed of everything random
	Now       time.Time // History ends shortly before Now; zero means time.Now() at the call
	// FailWorkflow names a workflow whose jobs always finish failed.
	FailWorkflow string

	step *stepState
}

// catalog is the base of workflow names, with each one's typical run time
// (seconds) and how often it runs (relative weight). Beyond its length,
// names repeat with a suffix: pagerank_daily_2.
var catalog = [...]struct {
	name   string
	median float64
	weight float64
}{
	{"pagerank_daily", 900, 1},
	{"bfs_social", 8, 6},
	{"lpa_fraud", 240, 3},
	{"社区发现_lpa", 420, 2},
	{"wcc_accounts", 120, 3},
	{"kcore_influencers", 600, 1.5},
	{"sssp_logistics", 30, 5},
	{"louvain_communities", 2400, 0.7},
	{"degree_centrality_hourly", 60, 4},
	{"triangle_count_weekly", 3000, 0.3},
	{"betweenness_risk", 3600, 0.3},
	{"jaccard_recommend", 180, 2},
	{"node2vec_embeddings", 4200, 0.3},
	{"hanp_groups", 300, 1},
	{"closeness_supply_chain", 1200, 0.6},
	{"clustering_coefficient_ads", 90, 2},
}

const (
	maxRunSeconds   = 2 * 3600 // runs are clamped to [1 s, 2 h]
	maxQueueSeconds = 60
	historyGapMS    = 20_000 // mean time between two created jobs in History
)

// profile is a workflow and how its jobs behave.
type profile struct {
	Workflow
	median float64 // typical run time, seconds
	cumul  float64 // cumulative weight, for picking
	fails  bool    // FailWorkflow
}

func (w Workload) now() time.Time {
	if w.Now.IsZero() {
		return time.Now()
	}
	return w.Now
}

// WorkflowList returns the workload's workflows: unique names (one of them
// Unicode, "社区发现_lpa", when there are four or more) and unique 10-digit ids.
func (w Workload) WorkflowList() []Workflow {
	ps := w.profiles()
	out := make([]Workflow, len(ps))
	for i, p := range ps {
		out[i] = p.Workflow
	}
	return out
}

func (w Workload) profiles() []profile {
	n := max(1, w.Workflows)
	rng := rand.New(rand.NewPCG(uint64(w.Seed), 0x5eed_f10e))
	ps := make([]profile, n)
	ids := make(map[string]bool, n)
	total := 0.0
	for i := range ps {
		c := catalog[i%len(catalog)]
		name := c.name
		if i >= len(catalog) {
			name += "_" + strconv.Itoa(i/len(catalog)+1)
		}
		id := strconv.FormatInt(1_000_000_000+rng.Int64N(9_000_000_000), 10)
		for ids[id] {
			id = strconv.FormatInt(1_000_000_000+rng.Int64N(9_000_000_000), 10)
		}
		ids[id] = true
		total += c.weight * (0.7 + 0.6*rng.Float64())
		ps[i] = profile{
			Workflow: Workflow{ID: id, Name: name},
			median:   c.median * (0.7 + 0.7*rng.Float64()),
			cumul:    total,
			fails:    name == w.FailWorkflow,
		}
	}
	return ps
}

func pick(ps []profile, rng *rand.Rand) *profile {
	x := rng.Float64() * ps[len(ps)-1].cumul
	lo, hi := 0, len(ps)-1
	for lo < hi {
		m := (lo + hi) / 2
		if ps[m].cumul <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return &ps[lo]
}

// plan is what happens to one job: drawn from a hash of the seed and the job
// id, so History and Step agree on a job without sharing state.
type plan struct {
	queueMS, runMS int64
	status         int // the terminal status
}

func planFor(seed int64, id int64, p *profile) plan {
	h1 := splitmix64(uint64(seed)*0x9e3779b97f4a7c15 ^ uint64(id))
	h2 := splitmix64(h1)
	u := func(h uint64) float64 { return float64(h>>11) / (1 << 53) } // [0, 1)
	u1, u2, u3, u4 := u(h1), u(h2), u(splitmix64(h2)), u(splitmix64(h1^0xabcdef))

	median := 60.0
	fails := false
	if p != nil {
		median, fails = p.median, p.fails
	}
	normal := math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2) // Box-Muller
	run := median * math.Exp(0.6*normal)
	pl := plan{queueMS: int64(u3 * u3 * maxQueueSeconds * 1000), status: explorer.StatusSuccess}
	switch {
	case fails || (u4 >= 0.85 && u4 < 0.95):
		pl.status = explorer.StatusFailed
	case u4 >= 0.95:
		pl.status = explorer.StatusInterrupted
	}
	if pl.status != explorer.StatusSuccess { // stopped part way
		run *= 0.1 + 0.9*u(splitmix64(h2^0x1234))
	}
	pl.runMS = int64(math.Min(math.Max(run, 1), maxRunSeconds) * 1000)
	return pl
}

// History returns n jobs with IDs 1..n in ascending CreateTime, the newest
// created shortly before Now, about 20 s apart. Each job's fate is planned
// (queue 0-60 s, run time by workflow, ≈85% success, 10% failed, 5%
// interrupted): jobs whose plan ends after Now are preparing or running, so
// only the newest few are not terminal.
func (w Workload) History(n int) []explorer.Job {
	ps := w.profiles()
	rng := rand.New(rand.NewPCG(uint64(w.Seed), 0x4157_0e71))
	nowMS := w.now().UnixMilli()
	jobs := make([]explorer.Job, n)
	t := nowMS - 1000 - rng.Int64N(10_000)
	for i := n - 1; i >= 0; i-- {
		p := pick(ps, rng)
		id := int64(i + 1)
		j := explorer.Job{
			ID:           id,
			Name:         jobName(p.Name, time.UnixMilli(t)),
			WorkflowID:   p.ID, // shared, not copied
			WorkflowName: p.Name,
			CreateTime:   t,
		}
		pl := planFor(w.Seed, id, p)
		begin, end := t+pl.queueMS, t+pl.queueMS+pl.runMS
		switch {
		case begin > nowMS:
			j.Status = explorer.StatusPreparing
		case end > nowMS:
			j.Status, j.RunBeginTime = explorer.StatusRunning, begin
		default:
			j.Status, j.RunBeginTime, j.RunEndTime = pl.status, begin, end
		}
		jobs[i] = j
		t -= 1 + int64(rng.ExpFloat64()*historyGapMS)
	}
	return jobs
}

type stepState struct {
	rng      *rand.Rand
	profiles []profile
	byID     map[string]*profile
}

// Step makes one tick of live change in e at time now: it creates 0-3 new
// preparing jobs (0.3 on average), starts preparing jobs whose queue time has passed
// (runBeginTime = now), finishes running jobs whose run time has passed
// (mostly success, some failed or interrupted; runEndTime = now) and ends
// stopping jobs as interrupted. Jobs of workflows the workload does not know
// run about a minute. Jobs in other statuses are left alone.
func (w *Workload) Step(e *Explorer, now time.Time) {
	if w.step == nil {
		s := &stepState{
			rng:      rand.New(rand.NewPCG(uint64(w.Seed), 0x57e9)),
			profiles: w.profiles(),
		}
		s.byID = make(map[string]*profile, len(s.profiles))
		for i := range s.profiles {
			s.byID[s.profiles[i].ID] = &s.profiles[i]
		}
		w.step = s
	}
	s := w.step
	nowMS := now.UnixMilli()

	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.jobs {
		j := &e.jobs[i]
		switch j.Status {
		case explorer.StatusPreparing, explorer.StatusRunning, explorer.StatusStopping:
		default:
			continue
		}
		pl := planFor(w.Seed, j.ID, s.byID[j.WorkflowID])
		switch {
		case j.Status == explorer.StatusStopping:
			j.Status, j.RunEndTime = explorer.StatusInterrupted, nowMS
		case j.Status == explorer.StatusPreparing && nowMS >= j.CreateTime+pl.queueMS:
			j.Status, j.RunBeginTime = explorer.StatusRunning, nowMS
		case j.Status == explorer.StatusRunning && j.RunBeginTime == 0:
			j.RunBeginTime = nowMS
		case j.Status == explorer.StatusRunning && nowMS >= j.RunBeginTime+pl.runMS:
			j.Status, j.RunEndTime = pl.status, nowMS
		}
	}

	var created int
	switch x := s.rng.Float64(); {
	case x < 0.78:
		created = 0
	case x < 0.93:
		created = 1
	case x < 0.98:
		created = 2
	default:
		created = 3
	}
	for range created {
		p := pick(s.profiles, s.rng)
		name, ok := e.workflowNameLocked(p.ID) // it may have been renamed
		if !ok {
			name = p.Name
		}
		e.addLocked(explorer.Job{
			Name:         jobName(name, now),
			WorkflowID:   p.ID,
			WorkflowName: name,
			Status:       explorer.StatusPreparing,
			CreateTime:   nowMS,
		}, nowMS)
	}
}
