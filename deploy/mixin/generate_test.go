package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestGeneratedFilesAreUpToDate holds the committed files under deploy/
// equal to what the mixin compiles to. Regenerate with
//
//	go generate ./deploy/mixin
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	files, err := compile(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"prometheus/recording_rules.yml",
		"prometheus/alerting_rules.yml",
		"kubernetes/prometheusrule.yaml",
		"grafana/dashboards/nebula-explorer.json",
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("the mixin does not generate %s", want)
		}
	}
	for _, path := range sortedKeys(files) {
		got, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Errorf("%v; regenerate: go generate ./deploy/mixin", err)
			continue
		}
		if string(got) != files[path] {
			t.Errorf("deploy/%s differs from the mixin's output (first difference at line %d); regenerate: go generate ./deploy/mixin",
				path, firstDifference(string(got), files[path]))
		}
	}
}

// TestConfigChangesTheOutput proves the _config knobs reach the output: a
// user's job selector, Explorer label and severities end up in the rules.
func TestConfigChangesTheOutput(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.libsonnet", "rules.libsonnet", "alerts.libsonnet", "dashboard.libsonnet", "mixin.libsonnet", "generate.jsonnet"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == "mixin.libsonnet" {
			b = append(b, []byte(` + { _config+:: { exporterSelector: 'job="explorers"', explorerLabel: 'cluster', severities+: { jobFailed: 'warning' } } }`)...)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := compile(dir)
	if err != nil {
		t.Fatal(err)
	}
	alerts := files["prometheus/alerting_rules.yml"]
	for _, want := range []string{`job="explorers"`, `$labels.cluster`} {
		if !strings.Contains(alerts, want) {
			t.Errorf("alerting rules lack %s", want)
		}
	}
	if strings.Contains(alerts, `job="nebula_explorer"`) {
		t.Error(`alerting rules still select job="nebula_explorer"`)
	}
	if d := files["grafana/dashboards/nebula-explorer.json"]; !strings.Contains(d, `job=\"explorers\"`) || !strings.Contains(d, `cluster=~\"$cluster\"`) {
		t.Error("the dashboard ignores the job selector or the Explorer label")
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(alerts), &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "NebulaExplorerJobFailed" && r.Labels["severity"] != "warning" {
				t.Errorf("NebulaExplorerJobFailed has severity %q, want the configured warning", r.Labels["severity"])
			}
		}
	}
}

// firstDifference is the 1-based line where a and b first differ.
func firstDifference(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}
