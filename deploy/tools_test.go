// Package deploy_test proves the monitoring kit under deploy/ against the real
// tools: promtool, amtool, yamllint, Prometheus, Alertmanager and podman.
package deploy_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// prometheusYML is the shipped Prometheus configuration, relative to deploy/.
const prometheusYML = "prometheus/prometheus.yml"

// prometheusConfig is the part of a Prometheus configuration the tests read.
type prometheusConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// readYAML decodes a YAML file into v, failing the test on any error.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ruleFiles are the rule files the shipped prometheus.yml loads, in its
// order, relative to deploy/.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	var cfg prometheusConfig
	readYAML(t, prometheusYML, &cfg)
	var files []string
	for _, pattern := range cfg.RuleFiles {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(prometheusYML), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil || len(matches) == 0 {
			t.Fatalf("%s: rule_files entry %q matches no file", prometheusYML, pattern)
		}
		files = append(files, matches...)
	}
	if len(files) == 0 {
		t.Fatalf("%s loads no rule files", prometheusYML)
	}
	return files
}

// prometheus3Script builds Prometheus 3 into its cache; CI runs it.
const prometheus3Script = "prometheus3.sh"

// needPrometheus3 returns the path of Prometheus 3's prometheus or promtool
// (see localtest.NeedPrometheus3).
func needPrometheus3(t *testing.T, name string) string {
	t.Helper()
	return localtest.NeedPrometheus3(t, prometheus3Script, name)
}
