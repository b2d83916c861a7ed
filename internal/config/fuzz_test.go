package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// goName matches what a raw yaml.v3 message would show: Go types and yaml's
// own prefixes.
var goName = regexp.MustCompile(`\b(?:config|secret|model|yaml)\.[A-Za-z]|unmarshal|float64|\binto\b|in type`)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, "../../config.yml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if goName.MatchString(err.Error()) {
				t.Errorf("raw yaml.v3 wording in %q", err)
			}
			// At most maxIssues problems of a few lines each, whatever the input.
			if len(err.Error()) > 16<<10 {
				t.Errorf("a %d-byte error", len(err.Error()))
			}
			return
		}
		// An accepted config validates again, unchanged.
		again := *cfg
		if err := again.validate(); err != nil {
			t.Fatalf("accepted, then refused: %v\n%s", err, data)
		}
		if !reflect.DeepEqual(again, *cfg) {
			t.Fatalf("validating twice changed the config:\n%v\n%v", cfg, again)
		}
		// And what String prints parses back to it (but for the secrets).
		if cfg.Explorer.TLSConfig.Key != "" {
			return
		}
		back, err := Parse([]byte(cfg.String()))
		if err != nil {
			t.Fatalf("String does not parse back: %v\n%s", err, cfg)
		}
		back.Explorer.Password = cfg.Explorer.Password
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("String parses back to\n%v\nnot\n%v", back, cfg)
		}
	})
}
