package collector

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// assertGolden compares got with testdata/<name>, or rewrites that file
// with got under -update (go test ./collector/ -run TestX -update), so a
// change of output shows as a diff of the golden file in review.
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range bytes.Split([]byte(want), []byte("\n")) {
		count[string(l)]++
	}
	for _, l := range bytes.Split([]byte(got), []byte("\n")) {
		count[string(l)]--
	}
	var b bytes.Buffer
	for _, l := range bytes.Split([]byte(want), []byte("\n")) {
		if count[string(l)] > 0 {
			b.WriteString("- " + string(l) + "\n")
			count[string(l)]--
		}
	}
	for _, l := range bytes.Split([]byte(got), []byte("\n")) {
		if count[string(l)] < 0 {
			b.WriteString("+ " + string(l) + "\n")
			count[string(l)]++
		}
	}
	return b.String()
}

// mustText is the text exposition of s's job metrics.
func mustText(t *testing.T, s *state) []byte {
	t.Helper()
	b, err := appendText(context.Background(), nil, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
