// Package deploy_test proves the monitoring kit under deploy/ against the real
// tools: promtool, amtool, yamllint, Prometheus, Alertmanager and podman.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
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

// needTool returns the path of an external program the test needs. Outside CI a
// missing program skips the test; in CI (CI set) it fails it, since .ci/run
// must have installed it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/run must install it (see TOOLING notes in README)", name)
	}
	t.Skipf("%s is not installed; skipping (CI fails instead)", name)
	return ""
}
