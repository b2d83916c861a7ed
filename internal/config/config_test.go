package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// secrets are the passwords used in testdata: no error and no print may
// show them.
var secrets = []string{"hunter2", "nebula"}

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password %q:\n%s", what, secret, s)
		}
	}
}

func dur(d time.Duration) model.Duration { return model.Duration(d) }

// withExplorer is the default config with the given explorer keys set.
func withExplorer(url, user string, password promconfig.Secret) Config {
	c := defaultConfig()
	c.Explorer.URL, c.Explorer.Username, c.Explorer.Password = url, user, password
	return c
}

func TestLoadGoodFiles(t *testing.T) {
	full := Config{
		Explorer: Explorer{
			URL:                  "https://explorer.test:8443/explorer",
			Username:             "monitor",
			PasswordFile:         "testdata/password.txt",
			GraphAddress:         "graphd.nebula.svc",
			GraphPort:            9779,
			AuthEncoding:         "colon",
			Timeout:              dur(30 * time.Second),
			PageSize:             500,
			MaxRequestsPerSecond: 20.5,
			TLSConfig: promconfig.TLSConfig{
				CAFile:     "testdata/tls/test.crt",
				CertFile:   "testdata/tls/test.crt",
				KeyFile:    "testdata/tls/test.key",
				ServerName: "explorer.test",
				MinVersion: promconfig.TLSVersion(tls.VersionTLS12),
			},
		},
		Sync: Sync{
			Timeout:            dur(5 * time.Minute),
			Overlap:            dur(10 * time.Minute),
			Lookback:           dur(48 * time.Hour),
			FullResyncInterval: 0,
			Concurrency:        8,
			MaxBackoff:         dur(10 * time.Minute),
		},
		Tasks:     Tasks{Enabled: false, MaxRequestsPerSync: 200, Backfill: 0},
		Workflows: Workflows{Include: []string{"bfs.*", "pagerank"}, Exclude: []string{".*-test"}},
		Limits:    Limits{MaxWorkflows: 500, MaxLabelLength: 64},
		Metrics: Metrics{
			RunDurationBuckets:   []float64{10, 60, 600, 3600},
			QueueDurationBuckets: []float64{0, 1.5, 30},
			TaskDurationBuckets:  []float64{0.1, 1},
			ClassicHistograms:    false,
		},
	}
	partial := withExplorer("http://explorer:7002", "root", "hunter2")
	partial.Explorer.AuthEncoding = "json"
	partial.Sync.Overlap = dur(time.Hour)
	partial.Metrics.QueueDurationBuckets = []float64{1, 10}

	anchors := withExplorer("http://127.0.0.1:7002", "root", "hunter2")
	anchors.Sync.Timeout, anchors.Sync.Overlap, anchors.Sync.Lookback = dur(2*time.Minute), dur(2*time.Minute), dur(2*time.Minute)

	for _, tc := range []struct {
		file string
		want Config
	}{
		{"good-minimal.yml", withExplorer("http://127.0.0.1:7002", "root", "nebula")},
		{"good-full.yml", full},
		{"good-null-sections.yml", withExplorer("http://127.0.0.1:7002", "root", "hunter2")},
		{"good-partial-sections.yml", partial},
		{"good-anchors.yml", anchors},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			// String hides the passwords, so compare them apart.
			if got.Explorer.Password != tc.want.Explorer.Password {
				t.Error("the password differs")
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestLoadBadFiles(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"bad-empty.yml", "explorer.url: must be set; explorer.username: must be set; explorer: set password or password_file"},
		{"bad-unknown-key.yml", `line 7: unknown key "passwd" in explorer`},
		{"bad-unknown-keys.yml", `line 1: unknown key "explorers" at the top level; line 4: unknown key "timeot" in sync; line 7: unknown key "run_duration_bucket" in metrics`},
		{"bad-unknown-tls-key.yml", `line 6: unknown key "ca_fle" in explorer.tls_config`},
		{"bad-types.yml", `line 2: explorer.url: must be a string, got a list; ` +
			`line 4: explorer.password: must be a string, got a mapping; ` +
			`line 5: explorer.graph_port: must be a whole number, got "abc"; ` +
			`line 8: explorer.tls_config.insecure_skip_verify: must be true or false, got "maybe"; ` +
			`line 9: explorer.tls_config.min_version: must be TLS10, TLS11, TLS12 or TLS13, got "TLS14"; ` +
			`line 11: sync.timeout: must be a duration such as 30s, 5m or 1h30m, got "10"; ` +
			`line 12: sync.overlap: must be a duration such as 30s, 5m or 1h30m, got "-1m"; ` +
			`line 14: metrics.run_duration_buckets[1]: must be a number, got "10s"; ` +
			`line 15: metrics.queue_duration_buckets: must be a list, got "5"`},
		{"bad-secret-tagged.yml", "line 4: explorer.password: must be a string, got a value tagged !!int"},
		{"bad-section-not-mapping.yml", `line 5: sync: must be a mapping of keys, got "5m"; line 6: metrics: must be a mapping of keys, got a list`},
		{"bad-not-mapping.yml", "line 1: the file must be a mapping with the sections explorer, sync, tasks, workflows, limits and metrics, got a list"},
		{"bad-duplicate-key.yml", `line 5: key "url" appears twice in explorer (first on line 2)`},
		{"bad-multi-doc.yml", "line 5: a second YAML document starts here; the file must hold exactly one"},
		{"bad-syntax.yml", "line 3: invalid YAML: found a tab character that violates indentation"},
		{"bad-merge-loop.yml", "line 1: explorer: a merge (<<) includes the mapping it is in"},
		// "Billion laughs": merges of merges name one mapping 9^8 times.
		{"bad-merge-bomb.yml", `line 3: unknown key "nope" in explorer`},
		{"bad-merge-bomb-tls.yml", "line 6: explorer.tls_config: document contains excessive aliasing"},
		{"bad-url-scheme.yml", `explorer.url: scheme must be http or https, got "ftp"`},
		{"bad-url-credentials.yml", "explorer.url: must not hold a user or password, nor any @ (use explorer.username and explorer.password)"},
		{"bad-url-query.yml", "explorer.url: must not have a query (?...)"},
		{"bad-url-no-scheme.yml", "explorer.url: must start with http:// or https://"},
		{"bad-url-port.yml", "explorer.url: port must be between 1 and 65535, got 70000"},
		{"bad-both-passwords.yml", "explorer: set password or password_file, not both"},
		{"bad-no-password.yml", "explorer: set password or password_file"},
		{"bad-password-file-missing.yml", `explorer.password_file: cannot read "testdata/no-such-password.txt": no such file or directory`},
		{"bad-password-file-empty.yml", `explorer.password_file: "testdata/empty-password.txt" is empty`},
		{"bad-password-file-dir.yml", `explorer.password_file: "testdata/tls" is not a regular file`},
		{"bad-ranges.yml", `explorer.graph_address: must be a host name or IP address, without scheme or port (the port goes in explorer.graph_port), got "127.0.0.1:9669"; ` +
			"explorer.graph_port: must be between 1 and 65535, got 70000; " +
			`explorer.auth_encoding: must be auto, json or colon, got "base64"; ` +
			"explorer.timeout: must be greater than 0, got 0s; " +
			"explorer.page_size: must be between 1 and 10000, got 0; " +
			"sync.timeout: must be greater than 0, got 0s; " +
			"sync.lookback: must not be shorter than sync.overlap (30m < 1h)"},
		{"bad-buckets.yml", "metrics.run_duration_buckets: must be strictly increasing (5 after 10); metrics.queue_duration_buckets: must list at least one bucket"},
		{"bad-buckets-values.yml", "metrics.run_duration_buckets: must be finite numbers, got +Inf; metrics.queue_duration_buckets: must not be negative, got -1"},
		{"bad-tls-files.yml", `explorer.tls_config.ca_file: cannot read "testdata/tls/missing.crt": no such file or directory; explorer.tls_config.cert_file: "testdata/tls" is not a regular file`},
		{"bad-tls-garbage-ca.yml", "explorer.tls_config: unable to use specified CA cert file testdata/tls/garbage.crt"},
		{"bad-tls-cert-without-key.yml", "line 6: explorer.tls_config: exactly one of key or key_file must be configured when a client certificate is configured"},
		{"bad-tls-ref.yml", "explorer.tls_config.ca_ref: not supported: this exporter has no secret manager (use the _file or inline key)"},
		{"bad-second-round-ranges.yml", "explorer.max_requests_per_second: must be 0 (no bound) or a positive number, got -1; " +
			"sync.concurrency: must be between 1 and 64, got 65; " +
			"sync.max_backoff: must be greater than 0, got 0s; " +
			"tasks.max_requests_per_sync: must be between 1 and 10000, got 0; " +
			"limits.max_workflows: must be at least 1, got 0; " +
			"limits.max_label_length: must be at least 16 (bytes), got 8; " +
			"metrics.task_duration_buckets: must be strictly increasing (5 after 5)"},
		{"bad-second-round-types.yml", `line 5: explorer.max_requests_per_second: must be a number, got "fast"; ` +
			`line 7: sync.concurrency: must be a whole number, got "four"; ` +
			`line 9: tasks.enabled: must be true or false, got "maybe"; ` +
			`line 11: workflows.include: must be a list, got "bfs"; ` +
			`line 12: workflows.exclude[0]: must be a string, got a list; ` +
			`line 14: limits.max_workflows: must be a whole number, got "many"; ` +
			`line 16: metrics.classic_histograms: must be true or false, got "1"`},
		{"bad-workflow-regexp.yml", "workflows.include[1]: not a valid RE2 regular expression: missing closing ): `pagerank(`; " +
			"workflows.exclude[0]: not a valid RE2 regular expression: invalid nested repetition operator: `**`"},
		{"bad-tls-versions.yml", "explorer.tls_config.max_version: must not be lower than min_version (TLS12 < TLS13)"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted it:\n%v", cfg)
			}
			if want := path + ": " + tc.want; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			noSecret(t, "the error", err.Error())
		})
	}
}

// TestEveryTestdataFileIsTested keeps the two tables above and testdata/ in step.
func TestEveryTestdataFileIsTested(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	src, err := os.ReadFile("config_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.Contains(string(src), `"`+filepath.Base(f)+`"`) {
			t.Errorf("%s is in no table", f)
		}
	}
}

// TestHostileFilesAnswerAtOnce: a few hundred bytes of aliases and merges
// once took minutes to report (and a reload held its lock meanwhile). The
// bound is generous: the answer takes about a millisecond.
// TestSyntaxErrorLines: the line named is the one where the file goes
// wrong; yaml.v3 alone says 2, 3, 4, 1, 1, 4 and none for the first seven.
func TestSyntaxErrorLines(t *testing.T) {
	const head = "explorer:\n  url: http://h:7002\n  username: root\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"a tab on line 3", "explorer:\n  url: x\n\tusername: root\n", "line 3: invalid YAML: found a tab character that violates indentation"},
		{"a tab on line 4", head + "\tpassword: x\n", "line 4: invalid YAML: found a tab character that violates indentation"},
		{"a key indented too little on line 5", head + "  password: x\n graph_port: 1\n", "line 5: invalid YAML: did not find expected key"},
		{"a list item among keys on line 5", head + "  password: x\n  - a\n", "line 5: invalid YAML: did not find expected key"},
		{"an unclosed list on line 2", "explorer:\n  url: [a, b\nsync:\n  timeout: 1m\n", "line 2: invalid YAML: did not find expected ',' or ']'"},
		{"a key without a colon on line 4", head + "  password\n", "line 4: invalid YAML: could not find expected ':'"},
		{"two colons on line 1", "explorer: url: x\n", "line 1: invalid YAML: mapping values are not allowed in this context"},
		{"an error in a second document", head + "---\nexplorer:\n\turl: x\n", "line 6: invalid YAML: found character that cannot start any token"},
		{"CRLF line ends", "explorer:\r\n  url: x\r\n\tusername: root\r\n", "line 3: invalid YAML: found a tab character that violates indentation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestHostileFilesAnswerAtOnce(t *testing.T) {
	for _, file := range []string{"bad-merge-bomb.yml", "bad-merge-bomb-tls.yml", "bad-merge-loop.yml"} {
		t.Run(file, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(filepath.Join("testdata", file))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || len(err.Error()) > 1000 {
					t.Errorf("want a short error, got %d bytes: %.1000v", len(fmt.Sprint(err)), err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer within 10 s")
			}
		})
	}
}

func TestIssuesAreListedOnceAndBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("explorer:\n  url: http://h:7002\n  username: root\n  password: hunter2\n  tls_config: &t {nope: 1}\n")
	// The same mistake merged many times is said once...
	b.WriteString("sync: {<<: [&s {timeot: 1m}, *s, *s, *s]}\n")
	// ...and a hundred different ones are cut at maxIssues.
	b.WriteString("limits:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  key%d: 1\n", i)
	}
	_, err := Parse([]byte(b.String()))
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if n := strings.Count(msg, `unknown key "timeot" in sync`); n != 1 {
		t.Errorf("the merged mistake is listed %d times:\n%s", n, msg)
	}
	if n := strings.Count(msg, "; "); n != maxIssues {
		t.Errorf("%d issues listed, want %d and a count:\n%s", n+1, maxIssues, msg)
	}
	if !strings.HasSuffix(msg, "; and 82 more problems") {
		t.Errorf("no count of the problems left out:\n%s", msg)
	}
}

func TestLongKeysAreCutInErrors(t *testing.T) {
	key := strings.Repeat("k", 1000) // YAML's longest simple key
	_, err := Parse([]byte("explorer: {url: 'http://h:7002', username: root, password: hunter2, " + key + ": 1}"))
	want := `line 1: unknown key "` + strings.Repeat("k", 37) + `..." in explorer`
	if err == nil || err.Error() != want {
		t.Errorf("got %.200v", err)
	}
}

func TestFileSizeIsCapped(t *testing.T) {
	dir := t.TempDir()
	good := "explorer: {url: 'http://h:7002', username: root, password: hunter2}\n"
	pad := func(n int) string { return good + strings.Repeat("#", n-len(good)-1) + "\n" }
	at := filepath.Join(dir, "at-cap.yml")
	over := filepath.Join(dir, "over-cap.yml")
	os.WriteFile(at, []byte(pad(MaxFileSize)), 0o600)
	os.WriteFile(over, []byte(pad(MaxFileSize+1)), 0o600)
	if _, err := Load(at); err != nil {
		t.Errorf("a file of exactly 1 MiB: %v", err)
	}
	if _, err := Load(over); err == nil || err.Error() != over+": larger than 1 MiB: not a configuration file" {
		t.Errorf("a file over 1 MiB: got %v", err)
	}
	if _, err := Load(dir); err == nil || err.Error() != dir+": not a regular file" {
		t.Errorf("a directory: got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yml")
	if want := "testdata/nope.yml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v is not fs.ErrNotExist", err)
	}
}

func TestSampleConfig(t *testing.T) {
	const sample = "../../config.yml"
	t.Run("loads as the contract's five keys over the defaults", func(t *testing.T) {
		cfg, err := Load(sample)
		if err != nil {
			t.Fatal(err)
		}
		if want := withExplorer("http://127.0.0.1:7002", "root", "nebula"); !reflect.DeepEqual(*cfg, want) {
			t.Errorf("got\n%v\nwant\n%v", cfg, want)
		}
	})
	t.Run("documents real keys with their real defaults", func(t *testing.T) {
		data, err := os.ReadFile(sample)
		if err != nil {
			t.Fatal(err)
		}
		uncommented := regexp.MustCompile(`(?m)^(\s*)# (\s*[a-z_]+:.*)$`).ReplaceAll(data, []byte("$1$2"))
		if string(uncommented) == string(data) {
			t.Fatal("no commented key found")
		}
		// decode, not Parse: the example files do not exist.
		got, err := decode(uncommented)
		if err != nil {
			t.Fatalf("%v\n%s", err, uncommented)
		}
		want := defaultConfig()
		if !reflect.DeepEqual(got.Sync, want.Sync) || !reflect.DeepEqual(got.Tasks, want.Tasks) ||
			!reflect.DeepEqual(got.Limits, want.Limits) || !reflect.DeepEqual(got.Metrics, want.Metrics) {
			t.Errorf("sync, tasks, limits or metrics in the sample differ from the defaults:\n%v", got)
		}
		if len(got.Workflows.Include)+len(got.Workflows.Exclude) != 0 {
			t.Errorf("the sample's workflow filter is not empty:\n%v", got.Workflows)
		}
		e, d := got.Explorer, want.Explorer
		if e.AuthEncoding != d.AuthEncoding || e.Timeout != d.Timeout || e.PageSize != d.PageSize ||
			e.MaxRequestsPerSecond != d.MaxRequestsPerSecond || e.TLSConfig.InsecureSkipVerify {
			t.Errorf("explorer in the sample differs from the defaults:\n%v", e)
		}
		// Every key of the exporter's own sections is in the sample.
		for section, typ := range map[string]reflect.Type{"explorer": reflect.TypeFor[Explorer](), "sync": reflect.TypeFor[Sync](),
			"tasks": reflect.TypeFor[Tasks](), "workflows": reflect.TypeFor[Workflows](), "limits": reflect.TypeFor[Limits](), "metrics": reflect.TypeFor[Metrics]()} {
			for key := range yamlFields(typ) {
				if !regexp.MustCompile(`(?m)^\s*#?\s*` + key + `:`).Match(data) {
					t.Errorf("%s.%s is not in the sample", section, key)
				}
			}
		}
		if e.PasswordFile == "" || e.TLSConfig.CAFile == "" || e.TLSConfig.ServerName == "" || e.TLSConfig.MinVersion == 0 {
			t.Errorf("an optional explorer key is not in the sample:\n%v", e)
		}
	})
}

func TestDefaultsWhenSectionsAreAbsent(t *testing.T) {
	const five = "explorer:\n  url: http://127.0.0.1:7002\n  username: root\n  password: nebula\n  graph_address: 127.0.0.1\n  graph_port: 9669\n"
	for _, tc := range []struct{ name, yaml string }{
		{"sync and metrics absent", five},
		{"sync and metrics empty", five + "sync:\nmetrics:\n"},
		{"sync and metrics null", five + "sync: ~\nmetrics: null\n"},
		{"sync and metrics {}", five + "sync: {}\nmetrics: {}\n"},
		{"only the required keys", "explorer: {url: 'http://127.0.0.1:7002', username: root, password: nebula}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			want := withExplorer("http://127.0.0.1:7002", "root", "nebula")
			if !reflect.DeepEqual(*cfg, want) {
				t.Errorf("got\n%v\nwant\n%v", cfg, want)
			}
			if cfg.Sync.Timeout != dur(2*time.Minute) || cfg.Sync.Lookback != dur(time.Hour) ||
				cfg.Explorer.Timeout != dur(10*time.Second) || len(cfg.Metrics.RunDurationBuckets) != 15 {
				t.Errorf("not the documented defaults:\n%v", cfg)
			}
		})
	}
	t.Run("the default buckets are not shared", func(t *testing.T) {
		a, _ := Parse([]byte(five))
		a.Metrics.RunDurationBuckets[0] = 42
		b, _ := Parse([]byte(five))
		if b.Metrics.RunDurationBuckets[0] != 1 {
			t.Error("changing one config's buckets changed the defaults")
		}
	})
}

func TestWorkflowPatternsAreAnchored(t *testing.T) {
	w := Workflows{Include: []string{"bfs", "page.*|lpa"}, Exclude: []string{"(?i)TEST"}}
	include, exclude := w.Regexps()
	match := func(res []*regexp.Regexp, name string) bool {
		for _, re := range res {
			if re.MatchString(name) {
				return true
			}
		}
		return false
	}
	for name, want := range map[string]bool{
		"bfs": true, "bfs-nightly": false, "my-bfs": false,
		"pagerank": true, "lpa": true, "lpa2": false, "xlpa": false,
	} {
		if got := match(include, name); got != want {
			t.Errorf("include matches %q: %v, want %v", name, got, want)
		}
	}
	if !match(exclude, "test") || match(exclude, "tests") {
		t.Error("exclude is not anchored or loses the (?i) flag")
	}
	if include, exclude := (Workflows{}).Regexps(); include != nil || exclude != nil {
		t.Error("no patterns must give nil lists (everything included)")
	}
}

func TestURLIsNormalised(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7002/":          "http://127.0.0.1:7002",
		"https://explorer.test//":         "https://explorer.test",
		"https://explorer.test/explorer/": "https://explorer.test/explorer",
		"http://[::1]:7002":               "http://[::1]:7002",
	} {
		cfg, err := Parse([]byte(fmt.Sprintf("explorer: {url: %q, username: root, password: nebula}", in)))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if cfg.Explorer.URL != want {
			t.Errorf("%s became %s, want %s", in, cfg.Explorer.URL, want)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:7002/#x": "explorer.url: must not have a fragment (#...)",
		"http://:7002":             "explorer.url: must name a host",
		"http://127.0.0.1:7002?":   "explorer.url: must not have a query (?...)",
		"localhost:7002":           "explorer.url: must start with http:// or https://",
		"http://exa mple:7002":     `explorer.url: not a valid URL: invalid character " " in host name`,
	} {
		_, err := Parse([]byte(fmt.Sprintf("explorer: {url: %q, username: root, password: nebula}", in)))
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}

// TestURLErrorsShowNoPassword: whatever the shape of a password in the
// URL, no part of it is quoted back.
func TestURLErrorsShowNoPassword(t *testing.T) {
	const pw = "Pa:5/%zz w0rd#?"
	for _, url := range []string{
		"http://root:Pa:5/%zz w0rd#?@127.0.0.1:7002",
		"http://root:Pa:5@127.0.0.1:7002",
		"http://root:%zz@127.0.0.1:7002",
		"http://root:Pa/5@127.0.0.1:7002",
		"http://root:w0rd#?@127.0.0.1:7002",
		"https://Pa:5@[::1:7002",
		"http://root:Pa 5@127.0.0.1:7002/",
		"http://Pa:5%zz@127.0.0.1:7002/",
	} {
		_, err := Parse(fmt.Appendf(nil, "explorer: {url: %q, username: root, password: nebula}", url))
		if err == nil {
			t.Errorf("%s: accepted", url)
			continue
		}
		msg := err.Error()
		if msg != "explorer.url: "+noCredentials {
			t.Errorf("%s: %s", url, msg)
		}
		for i := 0; i+3 <= len(pw); i++ {
			if part := pw[i : i+3]; strings.Contains(msg, part) {
				t.Errorf("%s: the error shows %q: %s", url, part, msg)
			}
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, content, want string }{
		{"a trailing newline is dropped", "hunter2\n", "hunter2"},
		{"a trailing CRLF is dropped", "hunter2\r\n", "hunter2"},
		{"no newline is fine", "hunter2", "hunter2"},
		{"spaces are kept", " hunter2 \n", " hunter2 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Explorer{PasswordFile: write("pw", tc.content)}
			got, err := e.ReadPassword()
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("the file is read again at each call", func(t *testing.T) {
		e := Explorer{PasswordFile: write("rotated", "old\n")}
		write("rotated", "new\n")
		if got, _ := e.ReadPassword(); got != "new" {
			t.Errorf("got %q after rotation, want new", got)
		}
	})
	t.Run("an inline password is returned as is", func(t *testing.T) {
		e := Explorer{Password: "hunter2"}
		if got, err := e.ReadPassword(); err != nil || got != "hunter2" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("a missing file is named, with fs.ErrNotExist", func(t *testing.T) {
		p := filepath.Join(dir, "missing")
		_, err := (&Explorer{PasswordFile: p}).ReadPassword()
		want := fmt.Sprintf("explorer.password_file: cannot read %q: no such file or directory", p)
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v is not fs.ErrNotExist", err)
		}
	})
	t.Run("a file too large is refused without its content", func(t *testing.T) {
		p := write("big", strings.Repeat("hunter2 ", maxPasswordFileSize/8+1))
		_, err := (&Explorer{PasswordFile: p}).ReadPassword()
		want := fmt.Sprintf("explorer.password_file: %q is larger than 64 KiB", p)
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("Parse reads it at load time", func(t *testing.T) {
		p := write("pw", "hunter2\n")
		cfg, err := Parse(fmt.Appendf(nil, "explorer: {url: 'http://h:7002', username: root, password_file: %q}", p))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := cfg.Explorer.ReadPassword(); got != "hunter2" {
			t.Errorf("got %q", got)
		}
		noSecret(t, "String", cfg.String())
	})
}

func TestSecretNeverPrinted(t *testing.T) {
	cfg, err := Parse([]byte("explorer: {url: 'http://h:7002', username: root, password: hunter2}"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Explorer.TLSConfig.Key = "nebula" // an inline client key is a Secret too
	for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
		for _, v := range []any{cfg, *cfg, cfg.Explorer, &cfg.Explorer} {
			s := fmt.Sprintf(format, v)
			noSecret(t, fmt.Sprintf("%s of %T", format, v), s)
			if !strings.Contains(s, "password: <secret>") {
				t.Errorf("%s of %T does not show password: <secret>:\n%s", format, v, s)
			}
		}
	}
	// String prints YAML that parses back (but for the secrets).
	cfg.Explorer.TLSConfig.Key = ""
	back, err := Parse([]byte(cfg.String()))
	if err != nil {
		t.Fatalf("String does not parse back: %v\n%s", err, cfg)
	}
	back.Explorer.Password = cfg.Explorer.Password
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("String parses back to\n%v\nnot\n%v", back, cfg)
	}
}
