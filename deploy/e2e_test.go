package deploy_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestEndToEndAlerting proves the rules against a real Prometheus and a real
// Alertmanager fed by the exporter watching the simulator (see
// stack_test.go): the target is up, every recording rule returns data, every
// rule then evaluates with health ok, the failing workflow drives
// NebulaExplorerJobFailed to firing, one alert per failed job, and
// Alertmanager delivers each new failure through the route for its severity
// within the group interval, while the previous failure's alert still fires.
func TestEndToEndAlerting(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	deadline := time.Now().Add(stackStartDeadline)

	t.Run("the exporter target is up", func(t *testing.T) {
		var data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
				ScrapeURL string            `json:"scrapeUrl"`
			} `json:"activeTargets"`
		}
		if err := s.api("/api/v1/targets?state=active", &data); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, tg := range data.ActiveTargets {
			if tg.Labels["job"] != "nebula_explorer" {
				continue
			}
			found = true
			if tg.Health != "up" {
				t.Errorf("target %s: health %q (%s), want up", tg.ScrapeURL, tg.Health, tg.LastError)
			}
		}
		if !found {
			t.Errorf("no active target in job nebula_explorer: %+v", data.ActiveTargets)
		}
	})

	t.Run("the simulator's workflows reach Prometheus", func(t *testing.T) {
		s.eventually(t, deadline, "every simulator workflow has nebula_explorer_jobs series", func() (bool, string) {
			res, err := s.query(`count by (workflow) (nebula_explorer_jobs)`)
			if err != nil {
				return false, err.Error()
			}
			var got []string
			for _, r := range res {
				got = append(got, r.Metric["workflow"])
			}
			sort.Strings(got)
			want := slices.Sorted(slices.Values(s.Workflows))
			return slices.Equal(got, want), fmt.Sprintf("workflows %q, want %q", got, want)
		})
	})

	// All rules of the shipped rule files, from the files themselves.
	recording, alerting := e2eRuleNames(t)

	t.Run("every recording rule returns data", func(t *testing.T) {
		s.eventually(t, deadline, "every recording rule has a series", func() (bool, string) {
			var empty []string
			for _, name := range slices.Compact(slices.Sorted(slices.Values(recording))) {
				res, err := s.query(name)
				if err != nil {
					return false, err.Error()
				}
				if len(res) == 0 {
					empty = append(empty, name)
				}
			}
			return len(empty) == 0, fmt.Sprintf("no data yet: %q", empty)
		})
	})

	t.Run("every rule is loaded and evaluates with health ok, with data", func(t *testing.T) {
		s.eventually(t, deadline, "all rules are loaded and healthy", func() (bool, string) {
			var data struct {
				Groups []struct {
					Name  string `json:"name"`
					File  string `json:"file"`
					Rules []struct {
						Name      string `json:"name"`
						Type      string `json:"type"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			}
			if err := s.api("/api/v1/rules", &data); err != nil {
				return false, err.Error()
			}
			var loaded, bad []string
			for _, g := range data.Groups {
				for _, r := range g.Rules {
					loaded = append(loaded, r.Name)
					if r.Health != "ok" {
						bad = append(bad, fmt.Sprintf("%s/%s: health %q %s", g.Name, r.Name, r.Health, r.LastError))
					}
				}
			}
			want := append(slices.Clone(recording), alerting...)
			slices.Sort(loaded)
			slices.Sort(want)
			if !slices.Equal(loaded, want) {
				return false, fmt.Sprintf("loaded rules %q, want %q", loaded, want)
			}
			return len(bad) == 0, strings.Join(bad, "; ")
		})
	})

	t.Run("the failing workflow drives NebulaExplorerJobFailed to firing", func(t *testing.T) {
		s.eventually(t, deadline, "NebulaExplorerJobFailed fires for "+s.FailWorkflow, func() (bool, string) {
			var data alertsAnswer
			if err := s.api("/api/v1/alerts", &data); err != nil {
				return false, err.Error()
			}
			var seen []string
			for _, a := range data.Alerts {
				seen = append(seen, fmt.Sprintf("%s{workflow=%q,status=%q}:%s", a.Labels["alertname"], a.Labels["workflow"], a.Labels["status"], a.State))
				if a.Labels["alertname"] == "NebulaExplorerJobFailed" && a.Labels["workflow"] == s.FailWorkflow &&
					a.Labels["status"] == "failed" && a.Labels["severity"] == "critical" && a.Labels["job_id"] != "" && a.State == "firing" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("alerts: %v", seen)
		})
	})

	// alertmanager.yml routes severity="critical" to the receiver pager (a
	// webhook to this test in the test's copy), grouped by alertname,
	// explorer and workflow.
	jobIDs := func() (ids []string, seen []string) {
		for _, n := range s.Webhook.Notifications() {
			for _, a := range n.Alerts {
				seen = append(seen, fmt.Sprintf("%s:%s{workflow=%q,job_id=%q}:%s", n.Receiver, a.Labels["alertname"], a.Labels["workflow"], a.Labels["job_id"], a.Status))
				if n.Receiver == "pager" && a.Status == "firing" &&
					a.Labels["alertname"] == "NebulaExplorerJobFailed" && a.Labels["workflow"] == s.FailWorkflow &&
					a.Annotations["runbook_url"] != "" && n.GroupLabels["workflow"] == s.FailWorkflow &&
					n.GroupLabels["explorer"] == a.Labels["explorer"] && a.Labels["explorer"] != "" &&
					!slices.Contains(ids, a.Labels["job_id"]) {
					ids = append(ids, a.Labels["job_id"])
				}
			}
		}
		return ids, seen
	}
	t.Run("Alertmanager delivers it on the critical route", func(t *testing.T) {
		s.eventually(t, deadline, "the webhook receives NebulaExplorerJobFailed for "+s.FailWorkflow, func() (bool, string) {
			ids, seen := jobIDs()
			return len(ids) > 0, fmt.Sprintf("notifications so far: %v", seen)
		})
	})

	t.Run("a new failure while NebulaExplorerJobFailed fires is notified within the group interval", func(t *testing.T) {
		// The test's Alertmanager keeps the shipped repeat_interval (hours):
		// a second notification within minutes comes from the new alert of
		// the next failed job (its own job_id) in the firing group.
		s.eventually(t, time.Now().Add(3*time.Minute), "the webhook receives a second failed job of "+s.FailWorkflow, func() (bool, string) {
			ids, seen := jobIDs()
			return len(ids) > 1, fmt.Sprintf("job ids %q; notifications so far: %v", ids, seen)
		})
	})

	t.Run("the exporter and Explorer alerts stay silent", func(t *testing.T) {
		var data alertsAnswer
		if err := s.api("/api/v1/alerts", &data); err != nil {
			t.Fatal(err)
		}
		for _, a := range data.Alerts {
			switch a.Labels["alertname"] {
			case "NebulaExplorerExporterDown", "NebulaExplorerDown", "NebulaExplorerAPIErrors":
				t.Errorf("%s is %s: %v", a.Labels["alertname"], a.State, a.Labels)
			}
		}
	})
}

// e2eRuleNames returns the recording and alerting rule names of the rule
// files the shipped prometheus.yml loads.
func e2eRuleNames(t *testing.T) (recording, alerting []string) {
	t.Helper()
	for _, f := range ruleFiles(t) {
		for _, g := range rulesLoad(t, f).Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recording = append(recording, r.Record)
				} else {
					alerting = append(alerting, r.Alert)
				}
			}
		}
	}
	return recording, alerting
}

// alertsAnswer is the data of Prometheus's /api/v1/alerts.
type alertsAnswer struct {
	Alerts []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}
