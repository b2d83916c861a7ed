// Command mixin compiles the monitoring mixin (deploy/mixin/*.libsonnet)
// with go-jsonnet into the rule files, the PrometheusRule and the Grafana
// dashboard under deploy/, which stay committed. Run it from anywhere with
//
//	go generate ./deploy/mixin
//
// TestGeneratedFilesAreUpToDate fails when the committed files differ.
package main

//go:generate go run .

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-jsonnet"
)

func main() {
	files, err := compile(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, path := range sortedKeys(files) {
		out := filepath.Join("..", path)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(out, []byte(files[path]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote deploy/" + path)
	}
}

// compile evaluates generate.jsonnet in dir: the generated files by path
// relative to deploy/, with their contents.
func compile(dir string) (map[string]string, error) {
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	vm.StringOutput = true
	vm.OutputNewline = false
	// Imports resolve relative to the importing file, so dir may be any copy.
	files, err := vm.EvaluateFileMulti(filepath.Join(dir, "generate.jsonnet"))
	if err != nil {
		return nil, err
	}
	// jsonnet's JSON has blank lines in empty arrays; indent it the usual way.
	for path, content := range files {
		if strings.HasSuffix(path, ".json") {
			var buf bytes.Buffer
			if err := json.Indent(&buf, []byte(content), "", "  "); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			files[path] = buf.String()
		}
	}
	return files, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
