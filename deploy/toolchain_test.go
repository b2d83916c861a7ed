package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestToolchainIsPinnedEverywhere checks that every way of building the
// exporter uses the Makefile's Go toolchain: .ci/run, deploy/build-image.sh
// and the Dockerfile's from-source stage. A toolchain bump that misses one of
// them would ship a binary the vulnerability gate never saw.
func TestToolchainIsPinnedEverywhere(t *testing.T) {
	toolchain := makefileToolchain(t)
	for file, want := range map[string]string{
		"../.ci/run":     "\nexport GOTOOLCHAIN=" + toolchain + "\n",
		"build-image.sh": "\nexport GOTOOLCHAIN=" + toolchain + "\n",
		"../Dockerfile":  "\nARG GO_IMAGE=golang:" + strings.TrimPrefix(toolchain, "go") + "\n",
	} {
		if !strings.Contains(readText(t, file), want) {
			t.Errorf("%s lacks %q (the Makefile's toolchain is %s)", file, strings.TrimSpace(want), toolchain)
		}
	}
}

// makefileToolchain returns the Go toolchain the Makefile builds with.
func makefileToolchain(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^export GOTOOLCHAIN := (go\d+\.\d+\.\d+)$`).FindStringSubmatch(readText(t, "../Makefile"))
	if m == nil {
		t.Fatal("the Makefile has no `export GOTOOLCHAIN := goX.Y.Z` line")
	}
	return m[1]
}

func readText(t *testing.T, name string) string {
	t.Helper()
	return string(readFile(t, name))
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
