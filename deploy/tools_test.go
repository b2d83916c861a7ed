// Package deploy_test proves the monitoring kit under deploy/ against the real
// tools: promtool, amtool, yamllint, Prometheus, Alertmanager and podman.
package deploy_test

import (
	"os"
	"os/exec"
	"testing"
)

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
