// Package deploy_test proves the monitoring kit under deploy/ against the real
// tools: promtool, amtool, yamllint, Prometheus, Alertmanager and podman.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// prometheus3Script builds Prometheus 3 into its cache; CI runs it.
const prometheus3Script = "prometheus3.sh"

// needPrometheus3 returns the path of Prometheus 3's prometheus or promtool,
// from the cache prometheus3.sh fills: $PROMETHEUS3_CACHE (default
// $(go env GOPATH)/prometheus3) / the version pinned in the script. Outside
// CI a missing binary skips the test; in CI (CI set) it fails it.
func needPrometheus3(t *testing.T, name string) string {
	t.Helper()
	script, err := os.ReadFile(prometheus3Script)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version=(v[0-9.]+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatalf("%s: no line version=vX.Y.Z", prometheus3Script)
	}
	cache := os.Getenv("PROMETHEUS3_CACHE")
	if cache == "" {
		out, err := exec.Command(needTool(t, "go"), "env", "GOPATH").Output()
		if err != nil {
			t.Fatalf("go env GOPATH: %v", err)
		}
		cache = filepath.Join(strings.TrimSpace(string(out)), "prometheus3")
	}
	path := filepath.Join(cache, string(m[1]), name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Prometheus 3 %s is not built at %s: run deploy/%s (CI does)", m[1], path, prometheus3Script)
	}
	t.Skipf("Prometheus 3 %s is not built at %s; run deploy/%s (CI fails instead)", m[1], path, prometheus3Script)
	return ""
}
