package explorer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// requestLog records what Config.OnRequest reports.
type requestLog struct {
	mu      sync.Mutex
	results []string // endpoint + " " + result
}

func (l *requestLog) record(endpoint, result string, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, endpoint+" "+result)
}

func (l *requestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.results, ", ")
}

func TestAnswersThatDoNotMatchTheRequest(t *testing.T) {
	success := explorer.StatusSuccess
	cases := []struct {
		name   string
		quirks explorertest.Quirks
		filter explorer.Filter
		detail bool // GET jobs/<id> rather than the listing
		reason string
	}{
		{"a listing that ignores the status filter", explorertest.Quirks{IgnoreStatusFilter: true},
			explorer.Filter{Status: &success}, false, "item_outside_filter"},
		{"a listing that ignores the time window", explorertest.Quirks{IgnoreTimeFilter: true},
			explorer.Filter{FromCreateTime: 1050, ToCreateTime: 1100}, false, "item_outside_filter"},
		{"a listing that ignores the order", explorertest.Quirks{IgnoreOrder: true}, explorer.Filter{}, false, "order"},
		{"a null item", explorertest.Quirks{NullItem: true}, explorer.Filter{}, false, "null_item"},
		{"a status named twice, in two cases", explorertest.Quirks{CaseDuplicateStatus: true}, explorer.Filter{}, false, "duplicate_key"},
		{"more items than asked for", explorertest.Quirks{ExtraItems: 11}, explorer.Filter{}, false, "page_size"},
		{"the detail of another job", explorertest.Quirks{WrongDetail: true}, explorer.Filter{}, true, "wrong_job"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails with reason "+tc.reason, func(t *testing.T) {
			fake := explorertest.New()
			var log requestLog
			c := newClientWith(t, fake, explorer.Config{OnRequest: log.record})
			for i := range 40 {
				status := explorer.StatusSuccess
				if i%3 == 0 {
					status = explorer.StatusFailed
				}
				fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: status, CreateTime: int64(1000 + 10*i)})
			}
			fake.SetQuirks(tc.quirks)
			var err error
			visited := 0
			if tc.detail {
				_, err = c.Job(context.Background(), 3)
			} else {
				_, err = c.EachJob(context.Background(), tc.filter, 50, func(explorer.Job) { visited++ })
			}
			var inv *explorer.InvalidAnswerError
			if !errors.As(err, &inv) || inv.Reason != tc.reason {
				t.Fatalf("err = %v, want an invalid answer (%s)", err, tc.reason)
			}
			if visited != 0 {
				t.Errorf("%d jobs visited from an invalid answer", visited)
			}
			if want := "invalid_answer"; !strings.HasSuffix(log.String(), want) {
				t.Errorf("requests reported: %s; want the last %s", log.String(), want)
			}
		})
	}
	t.Run("a listing that ignores the page number fails rather than loops", func(t *testing.T) {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 30, func(int) int64 { return 1000 }) // one millisecond: paging needs page numbers
		fake.SetQuirks(explorertest.Quirks{IgnorePage: true})
		_, err := c.EachJob(context.Background(), explorer.Filter{}, 10, func(explorer.Job) {})
		var inv *explorer.InvalidAnswerError
		if !errors.As(err, &inv) || inv.Reason != "page_ignored" {
			t.Fatalf("err = %v, want an invalid answer (page_ignored)", err)
		}
	})
}

func TestPagingDoesNotTrustTotal(t *testing.T) {
	for _, total := range []int{1000, 0, -1} {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 5000, func(i int) int64 { return int64(1000 + i/3) })
		fake.SetQuirks(explorertest.Quirks{Total: &total})
		seen, requests := visitAll(t, c, 500)
		assertEachOnce(t, fake, seen)
		if requests > 5000/500+2 {
			t.Errorf("total %d: %d requests", total, requests)
		}
	}
	t.Run("a server that caps pages silently, with a true total, still yields every job", func(t *testing.T) {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 100, func(i int) int64 { return int64(1000 + i) })
		fake.SetQuirks(explorertest.Quirks{MaxPageSize: 7})
		seen := map[int64]int{}
		// Ask more than the cap: pages are "short" of what was asked.
		if _, err := c.EachJob(context.Background(), explorer.Filter{}, 50, func(j explorer.Job) { seen[j.ID]++ }); err != nil {
			t.Fatal(err)
		}
		assertEachOnce(t, fake, seen)
	})
}

func TestNegativeCreateTimes(t *testing.T) {
	fake := explorertest.New()
	c := newClient(t, fake, explorer.EncodingAuto)
	addJobs(fake, 30, func(i int) int64 { return int64(-29 + 2*i) }) // -29, -27, ..., 29 (a zero would become now)
	seen, _ := visitAll(t, c, 4)
	assertEachOnce(t, fake, seen)

	t.Run("a lower bound still excludes them", func(t *testing.T) {
		n := 0
		if _, err := c.EachJob(context.Background(), explorer.Filter{FromCreateTime: 1}, 4, func(j explorer.Job) {
			n++
			if j.CreateTime < 1 {
				t.Errorf("job %+v before the bound", j)
			}
		}); err != nil || n != 15 {
			t.Errorf("%d jobs, %v; want 15", n, err)
		}
	})
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	// elsewhere records what reached the redirect's target.
	type elsewhere struct {
		mu       sync.Mutex
		requests int
		secrets  []string
	}
	target := func(t *testing.T, tls bool) (*elsewhere, string) {
		var got elsewhere
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.mu.Lock()
			defer got.mu.Unlock()
			got.requests++
			got.secrets = append(got.secrets, r.Header.Get("Authorization"), r.Header.Get("Cookie"))
		})
		srv := httptest.NewServer(h)
		if tls {
			srv.Close()
			srv = httptest.NewTLSServer(h)
		}
		t.Cleanup(srv.Close)
		return &got, srv.URL
	}
	for _, tc := range []struct {
		name   string
		path   string
		status int
		result string
	}{
		{"a 307 on /connect to another port", explorer.ConnectPath, 307, "connect http_307"},
		{"a 302 on /jobs to another port", explorer.JobsPath, 302, "jobs http_302"},
	} {
		t.Run(tc.name+" is an error, and nothing goes there", func(t *testing.T) {
			got, url := target(t, false)
			fake := explorertest.New()
			var log requestLog
			c := newClientWith(t, fake, explorer.Config{OnRequest: log.record})
			fake.SetQuirks(explorertest.Quirks{Redirect: &explorertest.Redirect{Path: tc.path, Status: tc.status, Location: url + tc.path}})
			_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
			if err == nil || !strings.Contains(err.Error(), "never followed") {
				t.Errorf("err = %v", err)
			}
			if got.requests != 0 || !strings.Contains(log.String(), tc.result) {
				t.Errorf("%d requests reached the target; requests reported: %s", got.requests, log.String())
			}
		})
	}
	t.Run("an https Explorer redirecting to http sends nothing in clear text", func(t *testing.T) {
		got, url := target(t, false)
		fake := explorertest.New()
		fake.SetCredentials("root", password)
		fake.SetQuirks(explorertest.Quirks{Redirect: &explorertest.Redirect{Path: explorer.ConnectPath, Status: 308, Location: url + explorer.ConnectPath}})
		srv := httptest.NewTLSServer(fake)
		defer srv.Close()
		c, err := explorer.NewClient(explorer.Config{URL: srv.URL, Username: "root", HTTPClient: srv.Client(),
			Password: func() (string, error) { return password, nil }, GraphAddress: "127.0.0.1", GraphPort: 9669})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err == nil {
			t.Error("no error")
		}
		if got.requests != 0 {
			t.Errorf("%d requests went to http: %v", got.requests, got.secrets)
		}
	})
}

func TestURLErrorsHidePasswords(t *testing.T) {
	for _, u := range []string{"http://root:s3cret@[::1", "http://root:s3cret@explorer:7002", "root:s3cret@explorer:7002/x", "ftp://u:s3cret@h/"} {
		_, err := explorer.NewClient(explorer.Config{URL: u})
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "s3c") {
			t.Errorf("%q: err = %v", u, err)
		}
	}
}

func TestRequestResults(t *testing.T) {
	t.Run("each request is reported once with its endpoint and result", func(t *testing.T) {
		fake := explorertest.New()
		var log requestLog
		c := newClientWith(t, fake, explorer.Config{OnRequest: log.record})
		j := fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: 1})
		if _, err := c.Job(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		fake.SetQuirks(explorertest.Quirks{TokenUses: 1, AuthErrorHTTP200: true}) // the next request's token is used up
		if _, err := c.Job(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		fake.SetQuirks(explorertest.Quirks{ErrorCode: 12345})
		c.Job(context.Background(), j.ID)
		fake.SetQuirks(explorertest.Quirks{HTTPStatus: 502})
		c.Job(context.Background(), j.ID)
		want := "connect success, job success, job ErrSession, connect success, job success, job ErrUnknown, job ErrInternalServer"
		if log.String() != want {
			t.Errorf("reported\n%s\nwant\n%s", log.String(), want)
		}
	})
	t.Run("a request that outlives explorer.timeout says so", func(t *testing.T) {
		fake := explorertest.New()
		hang := make(chan struct{})
		defer close(hang)
		var log requestLog
		c := newClientWith(t, fake, explorer.Config{OnRequest: log.record, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
		fake.SetQuirks(explorertest.Quirks{Hang: hang})
		_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
		if !explorer.IsRequestTimeout(err) || !strings.Contains(err.Error(), "explorer.timeout (50ms)") {
			t.Errorf("err = %v", err)
		}
		if log.String() != "connect timeout" {
			t.Errorf("reported %s", log.String())
		}
	})
	t.Run("an answer cut by explorer.timeout is a timeout, not an invalid answer", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == explorer.ConnectPath {
				http.SetCookie(w, &http.Cookie{Name: explorer.TokenCookie, Value: "t"})
				w.Write([]byte(`{"code":0,"data":{}}`))
				return
			}
			w.Write([]byte(`{"code":0,"data":{"items":[`))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		var log requestLog
		// Long enough for the login on a loaded machine: the listing is
		// what must run out of it.
		c, _ := explorer.NewClient(explorer.Config{URL: srv.URL, OnRequest: log.record, HTTPClient: &http.Client{Timeout: time.Second}})
		_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
		if !explorer.IsRequestTimeout(err) || log.String() != "connect success, jobs timeout" {
			t.Errorf("err = %v, reported %s", err, log.String())
		}
	})
	t.Run("the caller's deadline is not the request timeout", func(t *testing.T) {
		fake := explorertest.New()
		hang := make(chan struct{})
		defer close(hang)
		c := newClient(t, fake, explorer.EncodingAuto)
		fake.SetQuirks(explorertest.Quirks{Hang: hang})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.ListJobs(ctx, explorer.Filter{}, 1, 10)
		if explorer.IsRequestTimeout(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no answer at all is a network error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		var log requestLog
		c, _ := explorer.NewClient(explorer.Config{URL: srv.URL, OnRequest: log.record})
		if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err == nil || log.String() != "connect network" {
			t.Errorf("err = %v, reported %s", err, log.String())
		}
	})
}

func TestMaxRequestsPerSecond(t *testing.T) {
	fake := explorertest.New()
	c := newClientWith(t, fake, explorer.Config{MaxRequestsPerSecond: 0.001}) // one request, then one per 1000 s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.ListJobs(ctx, explorer.Filter{}, 1, 10)
	if err == nil || !strings.Contains(err.Error(), "max_requests_per_second") {
		t.Errorf("err = %v", err)
	}
	if s := fake.Stats(); s.Requests != 1 || s.Logins != 1 {
		t.Errorf("stats %+v: want the login only", s)
	}
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestLargeAnswersCostBoundedMemory(t *testing.T) {
	const mb = 1 << 20
	// The answers are made before the measure, and served from memory, so
	// that only the client's allocations count.
	padded := func(n int) []byte {
		return []byte(`{"padding":"` + strings.Repeat("x", n) + `","code":0,"data":{"items":[],"total":0}}`)
	}
	items := func(n int) []byte {
		item := `{"id":1,"name":"w_20220715090915","workflowId":"4216617528","workflowName":"w","status":2,"runBeginTime":1,"runEndTime":2,"createTime":1},`
		return []byte(`{"code":0,"data":{"items":[` + strings.Repeat(item, n) + `{"id":2}],"total":1}}`)
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		gz.Write(b)
		gz.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name string
		body []byte
		gzip bool
		max  uint64
	}{
		// The cap on a value (1 MiB without a quote) stops them before the
		// decoder's buffer grows.
		{"a 60 MB answer", padded(60 * mb), false, 8 * mb},
		{"a gzip bomb (60 MB of padding in 60 kB of gzip)", gzipped(padded(60 * mb)), true, 8 * mb},
		// 60 MB of items: refused at the first item beyond the page size.
		{"60 MB of items", items(450_000), false, 1 * mb},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == explorer.ConnectPath {
					http.SetCookie(w, &http.Cookie{Name: explorer.TokenCookie, Value: "t"})
					w.Write([]byte(`{"code":0,"data":{}}`))
					return
				}
				if tc.gzip {
					w.Header().Set("Content-Encoding", "gzip")
				}
				w.Write(tc.body)
			}))
			defer srv.Close()
			c, _ := explorer.NewClient(explorer.Config{URL: srv.URL})
			var err error
			n := allocated(func() { _, err = c.ListJobs(context.Background(), explorer.Filter{}, 1, 10) })
			t.Logf("%s (%d bytes): %.1f MiB allocated: %v", tc.name, len(tc.body), float64(n)/mb, err)
			var inv *explorer.InvalidAnswerError
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v, want an invalid answer", err)
			}
			if n > tc.max {
				t.Errorf("%.1f MiB allocated, want at most %.0f", float64(n)/mb, float64(tc.max)/mb)
			}
		})
	}
}

func TestLargePagesWithinTheLimit(t *testing.T) {
	// 10,000 jobs with their tasks in the listing (the largest page the
	// configuration allows): 7.9 MB, at the 8 MiB of other answers, well
	// within the 4 KiB per job a listing may take.
	fake := explorertest.New()
	c := newClient(t, fake, explorer.EncodingAuto)
	fake.AddJobs(explorertest.Workload{Workflows: 20, Seed: 1, Now: time.UnixMilli(1_700_000_000_000)}.History(10_000))
	fake.SetQuirks(explorertest.Quirks{TasksInListing: true})
	tasks := 0
	seen := map[int64]int{}
	if _, err := c.EachJob(context.Background(), explorer.Filter{}, 10_000, func(j explorer.Job) {
		seen[j.ID]++
		tasks += len(j.Tasks)
	}); err != nil {
		t.Fatal(err)
	}
	assertEachOnce(t, fake, seen)
	if tasks < 2*10_000 {
		t.Errorf("%d tasks in 10,000 jobs", tasks)
	}
}
