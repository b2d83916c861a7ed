// Package config holds the exporter's configuration file: its types, defaults and validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	Explorer  Explorer  `yaml:"explorer"`
	Sync      Sync      `yaml:"sync"`
	Tasks     Tasks     `yaml:"tasks"`
	Workflows Workflows `yaml:"workflows"`
	Limits    Limits    `yaml:"limits"`
	Metrics   Metrics   `yaml:"metrics"`
}

// Explorer says how to reach and log in to NebulaGraph Explorer.
type Explorer struct {
	// URL is Explorer's base URL (http or https), without a trailing slash.
	URL string `yaml:"url"`
	// Username is the NebulaGraph account used to log in.
	Username string `yaml:"username"`
	// Password is the account's password; exactly one of Password and
	// PasswordFile is set. Use ReadPassword rather than reading either.
	Password promconfig.Secret `yaml:"password"`
	// PasswordFile holds the password (a trailing newline is ignored). It is
	// read again at each login, so the password can be rotated.
	PasswordFile string `yaml:"password_file"`
	// GraphAddress and GraphPort name the graphd service Explorer connects to.
	GraphAddress string `yaml:"graph_address"`
	GraphPort    int    `yaml:"graph_port"`
	// AuthEncoding is how the account is encoded in the login's bearer token:
	// "json" (base64 of ["user","pass"]), "colon" (base64 of user:pass) or
	// "auto" (one, then the other).
	AuthEncoding string `yaml:"auth_encoding"`
	// Timeout bounds each HTTP request to Explorer.
	Timeout model.Duration `yaml:"timeout"`
	// PageSize is the page size asked of Explorer when listing jobs.
	PageSize int `yaml:"page_size"`
	// MaxRequestsPerSecond bounds the rate of requests to Explorer, in
	// every sync (cold ones included); 0 means no bound.
	MaxRequestsPerSecond float64 `yaml:"max_requests_per_second"`
	// TLSConfig configures TLS to an https URL.
	TLSConfig promconfig.TLSConfig `yaml:"tls_config"`
}

// Sync bounds and paces the synchronisation with Explorer's job history.
type Sync struct {
	// Timeout bounds one whole sync.
	Timeout model.Duration `yaml:"timeout"`
	// Overlap is how far before the newest job seen each incremental listing
	// starts again, to catch jobs that become visible late.
	Overlap model.Duration `yaml:"overlap"`
	// Lookback: unfinished jobs created within Lookback of the newest job are
	// refreshed by the incremental listing, older ones by status listings.
	Lookback model.Duration `yaml:"lookback"`
	// FullResyncInterval is how often the whole history is read again (to
	// notice deleted and renamed jobs); 0 disables it.
	FullResyncInterval model.Duration `yaml:"full_resync_interval"`
	// Concurrency is how many createTime windows a full sync pages at once.
	Concurrency int `yaml:"concurrency"`
	// MaxBackoff caps the wait before the next sync after failed ones.
	MaxBackoff model.Duration `yaml:"max_backoff"`
}

// Tasks shapes the task metrics (the steps of each job).
type Tasks struct {
	// Enabled turns the task metrics on.
	Enabled bool `yaml:"enabled"`
	// MaxRequestsPerSync bounds the GET jobs/<id> asked per sync for jobs
	// whose listing carries no tasks; the rest wait for the next sync.
	MaxRequestsPerSync int `yaml:"max_requests_per_sync"`
	// Backfill: a first sync covers the tasks of jobs that ended within it.
	Backfill model.Duration `yaml:"backfill"`
}

// Workflows selects the workflows exported, by name. The patterns are RE2
// regular expressions matched against the whole name.
type Workflows struct {
	// Include: when set, only workflows matching one of these.
	Include []string `yaml:"include,omitempty"`
	// Exclude: workflows matching one of these are not exported.
	Exclude []string `yaml:"exclude,omitempty"`
}

// Limits bound what hostile or unexpected data can cost.
type Limits struct {
	// MaxWorkflows is how many workflows are exported at most.
	MaxWorkflows int `yaml:"max_workflows"`
	// MaxLabelLength is the length, in bytes, beyond which label values are cut.
	MaxLabelLength int `yaml:"max_label_length"`
}

// Metrics shapes the exported histograms.
type Metrics struct {
	// RunDurationBuckets are the upper bounds, in seconds, of
	// nebula_explorer_job_run_duration_seconds.
	RunDurationBuckets []float64 `yaml:"run_duration_buckets"`
	// QueueDurationBuckets are the upper bounds, in seconds, of
	// nebula_explorer_job_queue_duration_seconds.
	QueueDurationBuckets []float64 `yaml:"queue_duration_buckets"`
	// TaskDurationBuckets are the upper bounds, in seconds, of
	// nebula_explorer_task_run_duration_seconds.
	TaskDurationBuckets []float64 `yaml:"task_duration_buckets"`
	// ClassicHistograms keeps the classic buckets of the duration
	// histograms; false sheds them (native buckets, _sum and _count stay).
	ClassicHistograms bool `yaml:"classic_histograms"`
}

// The defaults are functions, not variables, so that no caller can share (and
// change) the default bucket slices.

func defaultConfig() Config {
	return Config{
		Explorer: defaultExplorer(),
		Sync:     defaultSync(),
		Tasks:    Tasks{Enabled: true, MaxRequestsPerSync: 50, Backfill: model.Duration(time.Hour)},
		Limits:   Limits{MaxWorkflows: 10000, MaxLabelLength: 256},
		Metrics:  defaultMetrics(),
	}
}

func defaultExplorer() Explorer {
	return Explorer{
		GraphAddress: "127.0.0.1",
		GraphPort:    9669,
		AuthEncoding: "auto",
		Timeout:      model.Duration(10 * time.Second),
		PageSize:     1000,
	}
}

func defaultSync() Sync {
	return Sync{
		Timeout:            model.Duration(2 * time.Minute),
		Overlap:            model.Duration(5 * time.Minute),
		Lookback:           model.Duration(time.Hour),
		FullResyncInterval: model.Duration(time.Hour),
		Concurrency:        4,
		MaxBackoff:         model.Duration(5 * time.Minute),
	}
}

func defaultMetrics() Metrics {
	return Metrics{
		RunDurationBuckets:   durationBuckets(),
		QueueDurationBuckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		TaskDurationBuckets:  durationBuckets(),
		ClassicHistograms:    true,
	}
}

// durationBuckets are the default bounds of job and task run times: graph
// jobs run from seconds to a day.
func durationBuckets() []float64 {
	return []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400}
}

// Load reads and parses the configuration file at path. Relative file names
// in it (password_file, tls_config's files) are taken relative to the
// file's directory. Errors start with path.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// MaxFileSize bounds the configuration file: a real one is a few KiB, and
// a reload must not read a disk image by mistake.
const MaxFileSize = 1 << 20

// readFile reads a regular file of at most MaxFileSize bytes.
func readFile(path string) ([]byte, error) {
	// Stat first: reading a FIFO would block, and a reload with it.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, pathErrCause(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErrCause(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, pathErrCause(err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d MiB: not a configuration file", MaxFileSize>>20)
	}
	return data, nil
}

// Parse parses and validates one YAML document. Unknown keys are rejected at
// any depth; relative file names are taken relative to the working directory.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

func parse(data []byte, dir string) (*Config, error) {
	cfg, err := decode(data)
	if err != nil {
		return nil, err
	}
	cfg.Explorer.resolvePaths(dir)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decode reads the one YAML document in data over the defaults, strictly.
func decode(data []byte) (Config, error) {
	// First as a node tree: it tells whether there is exactly one document,
	// and it gives decodeError the lines and keys of whatever yaml.v3 refuses.
	d := yaml.NewDecoder(bytes.NewReader(data))
	var doc, extra yaml.Node
	switch err := d.Decode(&doc); {
	case errors.Is(err, io.EOF):
		// An empty file: the defaults, which validate rejects for want of a URL.
		return defaultConfig(), nil
	case err != nil:
		return Config{}, syntaxError(data, err)
	}
	switch err := d.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return Config{}, syntaxError(data, err)
	default:
		return Config{}, fmt.Errorf("line %d: a second YAML document starts here; the file must hold exactly one", extra.Line)
	}
	// yaml.v3 decodes over what is there: a key, or a whole section, that
	// is absent or null keeps its default.
	cfg := defaultConfig()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&cfg); err != nil {
		return Config{}, decodeError(&doc, err)
	}
	return cfg, nil
}

// resolvePaths makes the file names relative to dir, as Prometheus does.
func (e *Explorer) resolvePaths(dir string) {
	e.PasswordFile = promconfig.JoinDir(dir, e.PasswordFile)
	e.TLSConfig.SetDirectory(dir)
}

// maxPasswordFileSize bounds what ReadPassword reads, so a mistaken path
// (a log file, say) does not fill the memory.
const maxPasswordFileSize = 64 << 10

// ReadPassword returns the password, or the content of the password file
// without its trailing newline. The file is read at each call, so that a
// rotated password is picked up. Errors name the file, never its content.
func (e *Explorer) ReadPassword() (string, error) {
	if e.PasswordFile == "" {
		return string(e.Password), nil
	}
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("explorer.password_file: "+format, args...)
	}
	// Stat first: opening a FIFO (or /dev/stdin) for reading would block.
	fi, err := os.Stat(e.PasswordFile)
	if err != nil {
		return fail("cannot read %q: %w", e.PasswordFile, pathErrCause(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("%q is not a regular file", e.PasswordFile)
	}
	f, err := os.Open(e.PasswordFile)
	if err != nil {
		return fail("cannot read %q: %w", e.PasswordFile, pathErrCause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFileSize+1))
	if err != nil {
		return fail("cannot read %q: %w", e.PasswordFile, pathErrCause(err))
	}
	if len(b) > maxPasswordFileSize {
		return fail("%q is larger than %d KiB", e.PasswordFile, maxPasswordFileSize>>10)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return fail("%q is empty", e.PasswordFile)
	}
	return p, nil
}

// pathErrCause drops the *fs.PathError's operation and path, which the
// callers' messages already give, and keeps its cause for errors.Is.
func pathErrCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// String returns the configuration as YAML, with every secret shown as
// <secret>; fmt's %v, %+v and %s print this too.
func (c Config) String() string { return marshal(c) }

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// String returns the section as YAML, with every secret shown as <secret>.
func (e Explorer) String() string { return marshal(e) }

// GoString is String, so that %#v does not print the password either.
func (e Explorer) GoString() string { return e.String() }

func marshal(v any) string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("<unprintable config: %v>", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Sprintf("<unprintable config: %v>", err)
	}
	return b.String()
}
