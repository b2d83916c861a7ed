package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// problems collects validation failures, each "field: what is wrong".
type problems []string

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, field+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// validate checks the whole configuration, reporting every problem it finds,
// and normalises the URL. Running it again on its result changes nothing.
func (c *Config) validate() error {
	var p problems
	c.Explorer.validate(&p)
	c.Sync.validate(&p)
	c.Tasks.validate(&p)
	c.Workflows.validate(&p)
	c.Limits.validate(&p)
	c.Metrics.validate(&p)
	return p.err()
}

func (e *Explorer) validate(p *problems) {
	if u, msg := checkURL(e.URL); msg != "" {
		p.add("explorer.url", "%s", msg)
	} else {
		e.URL = u
	}
	if e.Username == "" {
		p.add("explorer.username", "must be set")
	}
	switch {
	case e.Password != "" && e.PasswordFile != "":
		p.add("explorer", "set password or password_file, not both")
	case e.Password == "" && e.PasswordFile == "":
		p.add("explorer", "set password or password_file")
	case e.PasswordFile != "":
		if _, err := e.ReadPassword(); err != nil {
			*p = append(*p, err.Error()) // already "explorer.password_file: ..."
		}
	}
	if msg := checkHost(e.GraphAddress); msg != "" {
		p.add("explorer.graph_address", "%s", msg)
	}
	if e.GraphPort < 1 || e.GraphPort > 65535 {
		p.add("explorer.graph_port", "must be between 1 and 65535, got %d", e.GraphPort)
	}
	switch e.AuthEncoding {
	case "auto", "json", "colon":
	default:
		p.add("explorer.auth_encoding", "must be auto, json or colon, got %q", e.AuthEncoding)
	}
	positive(p, "explorer.timeout", e.Timeout)
	if e.PageSize < 1 || e.PageSize > 10000 {
		p.add("explorer.page_size", "must be between 1 and 10000, got %d", e.PageSize)
	}
	if r := e.MaxRequestsPerSecond; math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
		p.add("explorer.max_requests_per_second", "must be 0 (no bound) or a positive number, got %s", num(r))
	}
	checkTLS(p, &e.TLSConfig)
}

const noCredentials = "must not hold a user or password, nor any @ (use explorer.username and explorer.password)"

// checkURL returns the URL without its trailing slashes, or what is wrong
// with it. It never quotes the whole URL, which may hold a password.
func checkURL(raw string) (string, string) {
	if raw == "" {
		return "", "must be set"
	}
	if !strings.Contains(raw, "://") {
		return "", "must start with http:// or https://"
	}
	// Before parsing: url.Parse's errors quote the part they choke on, and
	// in "http://user:pa/ss@host" or "http://user:%zz@host" that is the
	// password. An @ anywhere is taken for credentials.
	if strings.Contains(raw, "@") {
		return "", noCredentials
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "not a valid URL: " + err.Error()
	}
	switch {
	case u.Scheme == "":
		return "", "must start with http:// or https://"
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Sprintf("scheme must be http or https, got %q", u.Scheme)
	case u.User != nil:
		return "", noCredentials
	case u.Hostname() == "":
		return "", "must name a host"
	case u.RawQuery != "" || u.ForceQuery:
		return "", "must not have a query (?...)"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", "must not have a fragment (#...)"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Sprintf("port must be between 1 and 65535, got %s", port)
		}
	}
	return strings.TrimRight(raw, "/"), ""
}

// checkHost accepts an IP address or a host name, without scheme or port:
// Explorer takes the port separately.
func checkHost(h string) string {
	switch {
	case h == "":
		return "must be set"
	case net.ParseIP(h) != nil:
		return ""
	case strings.ContainsAny(h, ":/[]@?# \t\r\n"):
		return fmt.Sprintf("must be a host name or IP address, without scheme or port (the port goes in explorer.graph_port), got %q", h)
	}
	return ""
}

func checkTLS(p *problems, t *promconfig.TLSConfig) {
	const field = "explorer.tls_config"
	before := len(*p)
	for _, ref := range []struct{ key, value string }{{"ca_ref", t.CARef}, {"cert_ref", t.CertRef}, {"key_ref", t.KeyRef}} {
		if ref.value != "" {
			p.add(field+"."+ref.key, "not supported: this exporter has no secret manager (use the _file or inline key)")
		}
	}
	for _, f := range []struct{ key, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		// Stat first: reading a FIFO would block.
		fi, err := os.Stat(f.path)
		switch {
		case err != nil:
			p.add(field+"."+f.key, "cannot read %q: %v", f.path, pathErrCause(err))
		case !fi.Mode().IsRegular():
			p.add(field+"."+f.key, "%q is not a regular file", f.path)
		}
	}
	if t.MinVersion != 0 && t.MaxVersion != 0 && t.MaxVersion < t.MinVersion {
		p.add(field+".max_version", "must not be lower than min_version (%s < %s)", t.MaxVersion.String(), t.MinVersion.String())
	}
	if len(*p) != before {
		return
	}
	// What the HTTP client will do at start: parse the CA, load the client
	// certificate and key.
	if _, err := promconfig.NewTLSConfig(t); err != nil {
		p.add(field, "%v", err)
	}
}

func (s *Sync) validate(p *problems) {
	positive(p, "sync.timeout", s.Timeout)
	// Overlap and FullResyncInterval (0 disables it) cannot be negative:
	// model.Duration refuses a minus sign.
	if s.Lookback < s.Overlap {
		p.add("sync.lookback", "must not be shorter than sync.overlap (%s < %s)", s.Lookback, s.Overlap)
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		p.add("sync.concurrency", "must be between 1 and 64, got %d", s.Concurrency)
	}
	positive(p, "sync.max_backoff", s.MaxBackoff)
}

func (t *Tasks) validate(p *problems) {
	// Backfill cannot be negative: model.Duration refuses a minus sign.
	if t.MaxRequestsPerSync < 1 || t.MaxRequestsPerSync > 10000 {
		p.add("tasks.max_requests_per_sync", "must be between 1 and 10000, got %d", t.MaxRequestsPerSync)
	}
}

func (w *Workflows) validate(p *problems) {
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"workflows.include", w.Include}, {"workflows.exclude", w.Exclude}} {
		for i, pattern := range list.patterns {
			if _, err := regexp.Compile(pattern); err != nil {
				msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
				p.add(fmt.Sprintf("%s[%d]", list.field, i), "not a valid RE2 regular expression: %s", msg)
			}
		}
	}
}

// Regexps returns the patterns compiled and anchored at both ends, so that
// "bfs" matches the workflow bfs and not bfs-nightly. Call it on a
// validated configuration only.
func (w Workflows) Regexps() (include, exclude []*regexp.Regexp) {
	return anchored(w.Include), anchored(w.Exclude)
}

func anchored(patterns []string) []*regexp.Regexp {
	var res []*regexp.Regexp
	for _, p := range patterns {
		res = append(res, regexp.MustCompile("^(?:"+p+")$"))
	}
	return res
}

func (l *Limits) validate(p *problems) {
	if l.MaxWorkflows < 1 {
		p.add("limits.max_workflows", "must be at least 1, got %d", l.MaxWorkflows)
	}
	if l.MaxLabelLength < 16 {
		p.add("limits.max_label_length", "must be at least 16 (bytes), got %d", l.MaxLabelLength)
	}
}

func (m *Metrics) validate(p *problems) {
	checkBuckets(p, "metrics.run_duration_buckets", m.RunDurationBuckets)
	checkBuckets(p, "metrics.queue_duration_buckets", m.QueueDurationBuckets)
	checkBuckets(p, "metrics.task_duration_buckets", m.TaskDurationBuckets)
}

func positive(p *problems, field string, d model.Duration) {
	if d <= 0 {
		p.add(field, "must be greater than 0, got %s", d)
	}
}

// checkBuckets wants finite, non-negative, strictly increasing bounds; the
// +Inf bucket is implicit.
func checkBuckets(p *problems, field string, b []float64) {
	if len(b) == 0 {
		p.add(field, "must list at least one bucket")
		return
	}
	for i, v := range b {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			p.add(field, "must be finite numbers, got %s", num(v))
			return
		case v < 0:
			p.add(field, "must not be negative, got %s", num(v))
			return
		case i > 0 && v <= b[i-1]:
			p.add(field, "must be strictly increasing (%s after %s)", num(v), num(b[i-1]))
			return
		}
	}
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
