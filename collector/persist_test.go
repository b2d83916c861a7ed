package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// withPersistence keeps the state in a file of the test's temporary
// directory, written after every sync that changed something.
func withPersistence(t testing.TB) func(*Options) {
	file := filepath.Join(t.TempDir(), "state")
	return func(o *Options) { o.PersistenceFile, o.PersistenceInterval = file, 0 }
}

// persistentEnv is a test environment whose collector keeps its state in a
// file, bound to the fake's URL.
func persistentEnv(t *testing.T, change ...func(*Options)) *testEnv {
	e := newTestEnv(t, append([]func(*Options){withPersistence(t)}, change...)...)
	e.opts.ExplorerURL = e.url
	e.col = e.newCollector(t)
	return e
}

// richHistory gives the fake jobs of every kind: terminal in each status,
// unfinished in each other, undocumented statuses, tasks, several workflows.
func richHistory(e *testEnv) {
	e.fake.SetQuirks(explorertest.Quirks{TasksInListingOf: map[string]bool{"2": true}})
	for i := range 60 {
		ct := t0 + int64(i)*30_000
		j := explorer.Job{WorkflowID: []string{"1", "2", "3"}[i%3], WorkflowName: []string{"bfs", "pr", "社区发现"}[i%3],
			CreateTime: ct, Status: []int{0, 1, 2, 3, 4, 5, 9, 2, 3}[i%9]}
		if j.Status != explorer.StatusPreparing {
			j.RunBeginTime = ct + 1500
		}
		if explorer.IsTerminal(j.Status) {
			j.RunEndTime = j.RunBeginTime + int64(i)*7_000
		}
		e.fake.AddJob(j)
	}
}

// TestStateRoundTrip: every field of a rich state survives the file, so a
// field added to the state one day cannot be forgotten by persistence.
func TestStateRoundTrip(t *testing.T) {
	e := persistentEnv(t, withTasks(5))
	richHistory(e)
	e.mustSync(t)
	before := e.col.state
	if before.tasks == nil || len(before.tasks.backlog) == 0 || len(before.unfinished) == 0 || len(before.finishedSince) == 0 {
		t.Fatalf("the state is not rich enough to test with: tasks %v, unfinished %d, finished since %d",
			before.tasks, len(before.unfinished), len(before.finishedSince))
	}
	b, err := encodeState(e.opts, before, time.UnixMilli(t0), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	saved, err := decodeState(e.opts, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, saved.state) {
		t.Errorf("the state read back differs from the one written:\nwritten %+v\nread    %+v", before, saved.state)
	}
	if !saved.lastFull.Equal(time.UnixMilli(t0)) {
		t.Errorf("last full sync %v, want %v", saved.lastFull, time.UnixMilli(t0))
	}
}

// TestRestartContinuity: sync, persist, kill -9 (no Close), delete half the
// jobs in Explorer, restart. The restarted exporter starts from the file
// with an incremental sync that equals a fresh exporter's (no deletion yet),
// and after the deletions its counters and histograms stay at least where
// they were while its gauges follow Explorer.
func TestRestartContinuity(t *testing.T) {
	e := persistentEnv(t, func(o *Options) { o.Lookback = 10 * time.Minute })
	richHistory(e)
	e.mustSync(t)
	more := addHistory(e.fake, 20, t0+time.Hour.Milliseconds()) // after the write: the file lags behind
	e.opts.PersistenceInterval = time.Hour
	e.col = e.newCollector(t) // kill -9 and restart: the state of the file
	e.mustSync(t)
	before := jobMetrics(t, e.col)
	if want := e.fresh(t); before != want {
		t.Fatalf("after a restart, values differ from a fresh exporter's:\n%s", diffSamples(t, before, want))
	}

	for i, j := range e.fake.Jobs() {
		if i%2 == 0 {
			e.fake.DeleteJob(j.ID)
		}
	}
	addHistory(e.fake, 3, more+1000)
	e.opts.FullResyncInterval = time.Nanosecond // the restarted exporter sees the deletions at once
	e.col = e.newCollector(t)                   // kill -9 again: the file has the state before the deletions
	e.mustSync(t)
	after := jobMetrics(t, e.col)
	assertCountersDidNotDrop(t, before, after)
	if g, w := gauges(after), gauges(e.fresh(t)); g != w {
		t.Errorf("gauges do not follow Explorer after the restart:\n%s", diffSamples(t, g, w))
	}
}

// TestRestartCost: with persistence, the first scrape after a restart on a
// history of 100,000 jobs costs a handful of requests and answers up 1 with
// a fresh exporter's values.
func TestRestartCost(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 jobs")
	}
	e := persistentEnv(t, func(o *Options) {
		o.PageSize, o.Concurrency = 1000, 4
		// The cold syncs of 100,000 jobs (the first, and fresh's) take
		// longer than 10 s with -race on a loaded machine; the test
		// counts the restart's requests, not time.
		o.SyncTimeout = 5 * time.Minute
	})
	e.fake.AddJobs(explorertest.Workload{Workflows: 200, Seed: 1}.History(100_000))
	e.mustSync(t)
	newest := e.fake.Jobs()[e.fake.Len()-1].CreateTime
	for i := range 30 { // while the exporter was down
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: newest + int64(i+1)*1000})
	}
	e.col = e.newCollector(t)
	e.fake.ResetStats()
	if !e.scrape(time.Minute) {
		t.Fatalf("no up 1 at the first scrape after the restart:\n%s", e.logs)
	}
	requests := e.fake.Stats().Requests
	t.Logf("first scrape after a restart at 100,000 jobs: %d requests (login included)", requests)
	if requests > 5 {
		t.Errorf("%d requests", requests)
	}
	if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
		t.Errorf("values differ from a fresh exporter's:\n%s", diffSamples(t, got, want))
	}
}

// TestPersistenceWrites: written after a sync that changed something, at
// most once per interval, and at Close; no temporary file is left.
func TestPersistenceWrites(t *testing.T) {
	e := persistentEnv(t, func(o *Options) { o.PersistenceInterval = time.Minute })
	clock := withFakeClock(e)
	file := e.opts.PersistenceFile
	read := func() []byte {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	last := addHistory(e.fake, 5, t0)
	e.mustSync(t)
	first := read()

	last = addHistory(e.fake, 2, last+1000)
	clock.Advance(30 * time.Second)
	e.mustSync(t)
	if !bytes.Equal(read(), first) {
		t.Error("written again within the interval")
	}
	clock.Advance(30 * time.Second)
	e.mustSync(t) // nothing new, but the last change is not written yet
	second := read()
	if bytes.Equal(second, first) {
		t.Error("the change was not written once the interval passed")
	}
	addHistory(e.fake, 1, last+1000)
	e.mustSync(t)
	e.col.Close()
	if bytes.Equal(read(), second) {
		t.Error("Close did not write the last change")
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("files left beside the state: %v", entries)
	}
	metrics := scrapeText(t, e.col)
	for _, want := range []string{"nebula_explorer_persistence_last_write_success 1", "nebula_explorer_persistence_last_write_timestamp_seconds "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("no %q in\n%s", want, metrics)
		}
	}
}

func scrapeText(t *testing.T, c *Collector) string {
	t.Helper()
	families, err := c.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestBadStateFiles: a file that cannot be used is refused with one warning
// that names the reason, set aside, and the exporter starts from a full
// sync with exact values; it never crashes.
func TestBadStateFiles(t *testing.T) {
	// good is a valid file of a synced state, and its options.
	good := func(t *testing.T) ([]byte, Options) {
		e := persistentEnv(t)
		addHistory(e.fake, 5, t0)
		e.mustSync(t)
		b, err := os.ReadFile(e.opts.PersistenceFile)
		if err != nil {
			t.Fatal(err)
		}
		return b, e.opts
	}
	resum := func(b []byte) []byte { // a valid checksum over changed bytes
		body := b[:len(b)-sha256.Size]
		sum := sha256.Sum256(body)
		return append(append([]byte(nil), body...), sum[:]...)
	}
	cases := []struct {
		name   string
		reason string
		make   func(t *testing.T, path string)
	}{
		{"corrupt bytes", "checksum mismatch", func(t *testing.T, path string) {
			b, _ := good(t)
			b[len(b)/2] ^= 0xff
			os.WriteFile(path, b, 0o600)
		}},
		{"truncated", "checksum mismatch", func(t *testing.T, path string) {
			b, _ := good(t)
			os.WriteFile(path, b[:len(b)*2/3], 0o600)
		}},
		{"zero-length", "empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }},
		{"not a state file", "no magic bytes", func(t *testing.T, path string) { os.WriteFile(path, []byte("metrics: yes\n"), 0o600) }},
		{"an older format", "older format", func(t *testing.T, path string) {
			b, _ := good(t)
			binary.BigEndian.PutUint16(b[len(stateMagic):], stateFormat-1)
			os.WriteFile(path, resum(b), 0o600)
		}},
		{"a future format", "newer exporter", func(t *testing.T, path string) {
			b, _ := good(t)
			binary.BigEndian.PutUint16(b[len(stateMagic):], stateFormat+1)
			os.WriteFile(path, b, 0o600) // its checksum may be anything
		}},
		{"another state layout", "state layout differs", func(t *testing.T, path string) {
			b, _ := good(t)
			b[len(stateMagic)+2] ^= 1
			os.WriteFile(path, resum(b), 0o600)
		}},
		{"another Explorer URL", "another Explorer URL", func(t *testing.T, path string) {
			b, _ := good(t) // bound to the URL of another fake
			os.WriteFile(path, b, 0o600)
		}},
		{"other buckets", "other histogram buckets", func(t *testing.T, path string) {
			e := persistentEnv(t, func(o *Options) { o.RunBuckets = []float64{1, 2, 3} })
			addHistory(e.fake, 5, t0)
			e.mustSync(t)
			b, _ := os.ReadFile(e.opts.PersistenceFile)
			os.WriteFile(path, b, 0o600)
		}},
		{"undecodable payload", "undecodable", func(t *testing.T, path string) {
			b, _ := good(t)
			os.WriteFile(path, resum(append(b[:len(b)-40], b[len(b)-32:]...)), 0o600)
		}},
		{"a directory", "directory", func(t *testing.T, path string) { os.Mkdir(path, 0o700) }},
		{"unreadable", "not a directory", func(t *testing.T, path string) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := persistentEnv(t)
			path := e.opts.PersistenceFile
			if tc.name == "unreadable" { // its directory is a file: no one can read it
				os.WriteFile(filepath.Join(filepath.Dir(path), "file"), nil, 0o600)
				path = filepath.Join(filepath.Dir(path), "file", "state")
				e.opts.PersistenceFile = path
			}
			tc.make(t, path)
			addHistory(e.fake, 7, t0)
			e.logs.Reset()
			e.col = e.newCollector(t)
			logs := e.logs.String()
			if n := strings.Count(logs, "state file refused"); n != 1 || !strings.Contains(logs, tc.reason) {
				t.Errorf("want one warning naming %q, got:\n%s", tc.reason, logs)
			}
			if tc.name != "unreadable" {
				if _, err := os.Stat(path + ".bad"); err != nil {
					t.Errorf("the bad file was not set aside: %v", err)
				}
			}
			e.mustSync(t)
			if e.col.health.requests < 3 {
				t.Errorf("the first sync made %d requests: not a full sync of 7 jobs in pages of 3", e.col.health.requests)
			}
			if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
				t.Errorf("values differ from a fresh exporter's:\n%s", diffSamples(t, got, want))
			}
		})
	}
	t.Run("a file that can be written but not read", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		e := persistentEnv(t)
		os.WriteFile(e.opts.PersistenceFile, []byte("x"), 0o200)
		e.col = e.newCollector(t)
		if !strings.Contains(e.logs.String(), "permission denied") {
			t.Errorf("log:\n%s", e.logs)
		}
	})
}

// TestInheritKeepsCounters: a reload (a new collector) keeps the counters of
// the one it replaces, without a state file, even after deletions.
func TestInheritKeepsCounters(t *testing.T) {
	e := newTestEnv(t)
	e.opts.ExplorerURL = e.url
	e.col = e.newCollector(t)
	addHistory(e.fake, 9, t0)
	e.mustSync(t)
	before := jobMetrics(t, e.col)
	for _, j := range e.fake.Jobs()[:4] {
		e.fake.DeleteJob(j.ID)
	}
	prev := e.col
	e.col = e.newCollector(t)
	e.col.Inherit(prev)
	e.mustSync(t)
	after := jobMetrics(t, e.col)
	assertCountersDidNotDrop(t, before, after)
	if g, w := gauges(after), gauges(e.fresh(t)); g != w {
		t.Errorf("gauges do not follow Explorer after the reload:\n%s", diffSamples(t, g, w))
	}
	if after == e.fresh(t) {
		t.Error("the reloaded exporter shows a fresh exporter's counters: they dropped")
	}
}

// FuzzDecodeState: no file makes the decoder panic or allocate beyond its
// size; whatever state it accepts encodes and reads back again.
func FuzzDecodeState(f *testing.F) {
	opts := testOptions
	opts.ExplorerURL = "http://127.0.0.1:7002"
	s := newState(opts.RunBuckets, opts.QueueBuckets)
	for i := range 30 {
		ct := t0 + int64(i)*1000
		s.observe(explorer.Job{ID: int64(i + 1), WorkflowID: "1", WorkflowName: "bfs", Status: i % 6, CreateTime: ct,
			RunBeginTime: ct + 500, RunEndTime: ct + int64(i)*900})
	}
	b, err := encodeState(opts, s, time.UnixMilli(t0), time.UnixMilli(t0))
	if err != nil {
		f.Fatal(err)
	}
	header := len(stateMagic) + 2 + 16 + 1 + len(opts.ExplorerURL) + 12
	f.Add(b)
	f.Add(b[header : len(b)-sha256.Size]) // the payload alone
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeState(opts, data)
		s, err := decodePayload(data)
		if err != nil {
			return
		}
		again, err := encodeState(opts, s, time.Now(), time.Now())
		if err != nil {
			t.Fatalf("an accepted state does not encode: %v", err)
		}
		if _, err := decodeState(opts, again); err != nil {
			t.Fatalf("an accepted state does not read back: %v", err)
		}
	})
}

// BenchmarkRestartWithPersistence: 1M jobs of history in 1,000 workflows,
// against a fake that answers like a database (5 ms + 5 µs per item of a
// page). Reports the cold start (first sync, concurrency 4), the state
// file's size and write time, and a restart from the file: the time and API
// requests (login included) to the first up 1, after 50 jobs were created
// meanwhile.
func BenchmarkRestartWithPersistence(b *testing.B) {
	e := benchEnv(b, 1_000_000, 1000)
	e.opts.Concurrency = 4
	e.opts.ExplorerURL = e.url
	e.opts.PersistenceFile = filepath.Join(b.TempDir(), "state")
	e.fake.SetQuirks(explorertest.Quirks{Delay: 5 * time.Millisecond, DelayPerItem: 5 * time.Microsecond})
	e.col = e.newCollector(b)
	e.fake.ResetStats()
	start := time.Now()
	e.col.Sync(context.Background())
	if !e.col.health.ok {
		b.Fatalf("cold sync failed: %s", e.logs)
	}
	cold, coldRequests := time.Since(start), e.fake.Stats().Requests
	start = time.Now()
	data, err := encodeState(e.opts, e.col.state, e.col.lastFull, time.Now())
	if err == nil {
		err = writeFileAtomic(e.opts.PersistenceFile, data)
	}
	if err != nil {
		b.Fatal(err)
	}
	write := time.Since(start)

	newest := e.fake.Jobs()[e.fake.Len()-1].CreateTime
	workflows := explorertest.Workload{Workflows: 1000, Seed: 1}.WorkflowList()
	var took time.Duration
	requests := 0
	b.ResetTimer()
	for range b.N {
		for n := range 50 {
			newest += 1000
			w := workflows[n%len(workflows)]
			e.fake.AddJob(explorer.Job{WorkflowID: w.ID, WorkflowName: w.Name, CreateTime: newest})
		}
		e.fake.ResetStats()
		start := time.Now()
		c := e.newCollector(b) // a restart: reads the file
		c.Sync(context.Background())
		took += time.Since(start)
		if !c.health.ok {
			b.Fatalf("sync after restart failed: %s", e.logs)
		}
		if n := e.fake.Stats().Requests; n > 5 {
			b.Errorf("the first scrape after a restart made %d requests, want at most 5", n)
		}
		requests += e.fake.Stats().Requests
		c.Close()
	}
	// After the loop: ResetTimer drops the metrics reported before it.
	b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
	b.ReportMetric(float64(coldRequests), "cold-requests")
	b.ReportMetric(float64(write.Microseconds())/1000, "write-ms")
	b.ReportMetric(float64(len(data)), "file-bytes")
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "restart-ms")
	b.ReportMetric(float64(requests)/float64(b.N), "restart-requests")
}
