package explorer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

const password = "s3cret-Pa55"

func newClient(t *testing.T, fake *explorertest.Explorer, encoding string) *explorer.Client {
	t.Helper()
	return newClientWith(t, fake, explorer.Config{Encoding: encoding})
}

// newClientWith serves fake and returns a client of it with cfg's other
// settings.
func newClientWith(t *testing.T, fake *explorertest.Explorer, cfg explorer.Config) *explorer.Client {
	t.Helper()
	srv := explorertest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.SetCredentials("root", password)
	cfg.URL, cfg.Username, cfg.GraphAddress, cfg.GraphPort = srv.URL+"/", "root", "127.0.0.1", 9669
	cfg.Password = func() (string, error) { return password, nil }
	c, err := explorer.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newClock is a fake clock for the client and the fake.
func newClock() *localtest.Clock {
	return localtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

func addJobs(fake *explorertest.Explorer, n int, createTime func(i int) int64) {
	for i := 0; i < n; i++ {
		fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: createTime(i)})
	}
}

// visitAll runs EachJob over the whole history and counts visits per id.
func visitAll(t *testing.T, c *explorer.Client, pageSize int) (map[int64]int, int) {
	t.Helper()
	seen := map[int64]int{}
	n, err := c.EachJob(context.Background(), explorer.Filter{}, pageSize, func(j explorer.Job) { seen[j.ID]++ })
	if err != nil {
		t.Fatal(err)
	}
	return seen, n
}

func assertEachOnce(t *testing.T, fake *explorertest.Explorer, seen map[int64]int) {
	t.Helper()
	jobs := fake.Jobs()
	if len(seen) != len(jobs) {
		t.Errorf("visited %d distinct jobs, Explorer has %d", len(seen), len(jobs))
	}
	for _, j := range jobs {
		if seen[j.ID] != 1 {
			t.Errorf("job %d visited %d times", j.ID, seen[j.ID])
		}
	}
}

func TestLogin(t *testing.T) {
	cases := []struct {
		name      string
		accepts   explorertest.Encodings
		encoding  string
		wantError bool
	}{
		{"auto logs in where Explorer takes the JSON array", explorertest.JSONOnly, explorer.EncodingAuto, false},
		{"auto logs in where Explorer takes user:pass", explorertest.ColonOnly, explorer.EncodingAuto, false},
		{"json logs in where Explorer takes the JSON array", explorertest.JSONOnly, explorer.EncodingJSON, false},
		{"colon logs in where Explorer takes user:pass", explorertest.ColonOnly, explorer.EncodingColon, false},
		{"json is refused where Explorer takes only user:pass", explorertest.ColonOnly, explorer.EncodingJSON, true},
		{"colon is refused where Explorer takes only the JSON array", explorertest.JSONOnly, explorer.EncodingColon, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := explorertest.New()
			fake.SetQuirks(explorertest.Quirks{Encodings: tc.accepts})
			c := newClient(t, fake, tc.encoding)
			_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
			if tc.wantError {
				var apiErr *explorer.Error
				if !errors.As(err, &apiErr) || apiErr.Code != explorer.CodeUnauthorized || !errors.Is(err, explorer.ErrLoginRefused) {
					t.Fatalf("err = %v, want ErrUnauthorized and ErrLoginRefused", err)
				}
				if !strings.Contains(err.Error(), "in the "+tc.encoding+" encoding") {
					t.Errorf("error does not name the encoding refused: %v", err)
				}
				if strings.Contains(err.Error(), password) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("auto remembers the encoding that worked", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{Encodings: explorertest.ColonOnly})
		c := newClient(t, fake, explorer.EncodingAuto)
		fake.SetQuirks(explorertest.Quirks{Encodings: explorertest.ColonOnly, TokenUses: 1})
		for i := 0; i < 3; i++ {
			if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err != nil {
				t.Fatal(err)
			}
		}
		if s := fake.Stats(); s.Logins != 3 || s.FailedLogins != 1 {
			t.Errorf("logins %d, failed %d; want 3 and 1 (only the first try of the wrong encoding)", s.Logins, s.FailedLogins)
		}
	})
	t.Run("a wrong password is a refused login in both encodings that does not show it", func(t *testing.T) {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		fake.SetCredentials("root", "other")
		_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
		if !errors.Is(err, explorer.ErrLoginRefused) || strings.Contains(err.Error(), password) ||
			!strings.Contains(err.Error(), `login as "root": explorer refused the login in both encodings (json and colon)`) {
			t.Fatalf("err = %v", err)
		}
		if s := fake.Stats(); s.ConnectJSON != 1 || s.ConnectColon != 1 {
			t.Errorf("stats %+v: want one try of each encoding", s)
		}
	})
	t.Run("once an encoding worked, auto tries it first, and still both when refused", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{Encodings: explorertest.ColonOnly})
		c := newClient(t, fake, explorer.EncodingAuto)
		if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err != nil {
			t.Fatal(err)
		}
		fake.SetQuirks(explorertest.Quirks{RefuseLogins: true, TokenUses: 1})
		fake.ResetStats()
		_, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10)
		if !errors.Is(err, explorer.ErrLoginRefused) || !strings.Contains(err.Error(), "both encodings") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSessionToken(t *testing.T) {
	t.Run("a token that dies mid-listing is renewed and the listing completes", func(t *testing.T) {
		for _, http200 := range []bool{false, true} {
			fake := explorertest.New()
			c := newClient(t, fake, explorer.EncodingAuto)
			addJobs(fake, 20, func(i int) int64 { return int64(1000 + i) })
			fake.SetQuirks(explorertest.Quirks{TokenUses: 3, AuthErrorHTTP200: http200})
			seen, _ := visitAll(t, c, 2)
			assertEachOnce(t, fake, seen)
			if s := fake.Stats(); s.Logins < 4 {
				t.Errorf("HTTP 200 errors %v: %d logins, want a new one every 3 requests", http200, s.Logins)
			}
		}
	})
	t.Run("the token is renewed before its Max-Age runs out", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{TokenMaxAge: 100 * time.Second})
		clock := newClock()
		fake.SetNow(clock.Now)
		c := newClientWith(t, fake, explorer.Config{Now: clock.Now})
		addJobs(fake, 1, func(int) int64 { return 1 })
		for i := 0; i < 3; i++ {
			if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err != nil {
				t.Fatal(err)
			}
			clock.Advance(50 * time.Second) // the second request at 50%, the third at 100% of the Max-Age
		}
		s := fake.Stats()
		if s.Logins != 2 || s.Requests != s.Logins+s.Lists {
			t.Errorf("stats %+v: want a second login (only) for the third request and no refused request", s)
		}
	})
	for _, tc := range []struct {
		name   string
		cookie string
	}{
		{"a Max-Age of 1e10 seconds", "Max-Age=10000000000"},
		{"an Expires in 2065", "Expires=Mon, 02 Jan 2065 15:04:05 GMT"},
	} {
		t.Run(tc.name+" does not overflow: the token is kept, and renewed within 30 days", func(t *testing.T) {
			logins := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == explorer.ConnectPath {
					logins++
					w.Header().Set("Set-Cookie", explorer.TokenCookie+"=t; Path=/; "+tc.cookie)
					w.Write([]byte(`{"code":0,"data":{}}`))
					return
				}
				w.Write([]byte(`{"code":0,"data":{"items":[],"total":0}}`))
			}))
			defer srv.Close()
			clock := newClock()
			c, _ := explorer.NewClient(explorer.Config{URL: srv.URL, Now: clock.Now})
			for _, step := range []time.Duration{0, time.Hour, 26 * 24 * time.Hour, 2 * 24 * time.Hour} {
				clock.Advance(step)
				if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err != nil {
					t.Fatal(err)
				}
			}
			if logins != 2 {
				t.Errorf("%d logins over 29 days, want 2 (the token renewed at 27 days)", logins)
			}
		})
	}
}

func TestEachJob(t *testing.T) {
	t.Run("a server that caps the page size still yields every job once", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{MaxPageSize: 4})
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 37, func(i int) int64 { return int64(1000 + 10*i) })
		seen, requests := visitAll(t, c, 1000)
		assertEachOnce(t, fake, seen)
		if requests > 37/3+2 {
			t.Errorf("%d requests for 37 jobs in pages of 4", requests)
		}
	})
	t.Run("jobs created between page requests are neither lost nor doubled", func(t *testing.T) {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 30, func(i int) int64 { return int64(1000 + 10*i) })
		fake.SetQuirks(explorertest.Quirks{OnList: func(_ explorer.Filter, page int) {
			// A new job and one that shows up late, behind the pages already read.
			fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: 5000 + int64(page)})
			fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: 1005})
		}})
		seen := map[int64]int{}
		_, err := c.EachJob(context.Background(), explorer.Filter{}, 5, func(j explorer.Job) { seen[j.ID]++ })
		if err != nil {
			t.Fatal(err)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("job %d visited %d times", id, n)
			}
		}
		for _, j := range fake.Jobs() {
			if j.CreateTime < 2000 && j.ID <= 30 && seen[j.ID] != 1 {
				t.Errorf("job %d, there before the listing began, was visited %d times", j.ID, seen[j.ID])
			}
		}
	})
	t.Run("listings at once, more than the page buffers, each visit a job with its own tasks", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{TasksInListing: true})
		c := newClient(t, fake, explorer.EncodingAuto)
		history := explorertest.Workload{Workflows: 20, Seed: 3}.History(600)
		fake.AddJobs(history)
		var (
			mu    sync.Mutex
			tasks = map[int64][]explorer.Task{} // as visited, copied during the visit
			wg    sync.WaitGroup
		)
		for w := range 6 { // disjoint windows of 100 jobs, paged at once
			from, to := history[100*w].CreateTime, history[100*w+99].CreateTime
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.EachJob(context.Background(), explorer.Filter{FromCreateTime: from, ToCreateTime: to}, 7, func(j explorer.Job) {
					mu.Lock()
					defer mu.Unlock()
					if _, twice := tasks[j.ID]; twice {
						t.Errorf("job %d visited twice", j.ID)
					}
					tasks[j.ID] = slices.Clone(j.Tasks)
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(tasks) != len(history) {
			t.Fatalf("visited %d jobs, want %d", len(tasks), len(history))
		}
		withTasks := 0
		for id, got := range tasks {
			detail, err := c.Job(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !explorer.IsTerminal(detail.Status) {
				continue // its tasks move on meanwhile
			}
			if !reflect.DeepEqual(got, detail.Tasks) {
				t.Fatalf("job %d was visited with tasks %v, its detail has %v", id, got, detail.Tasks)
			}
			withTasks += min(len(got), 1)
		}
		if withTasks == 0 {
			t.Fatal("no job with tasks: the test shows nothing")
		}
	})
	t.Run("more jobs in one millisecond than a page are all visited once", func(t *testing.T) {
		fake := explorertest.New()
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 23, func(i int) int64 { return 1000 + int64(i/20) }) // 20 jobs in one millisecond
		seen, _ := visitAll(t, c, 5)
		assertEachOnce(t, fake, seen)
	})
	t.Run("exclusive time bounds lose no job of the millisecond a page ends in", func(t *testing.T) {
		fake := explorertest.New()
		fake.SetQuirks(explorertest.Quirks{ExclusiveTimeFilter: true})
		c := newClient(t, fake, explorer.EncodingAuto)
		addJobs(fake, 30, func(i int) int64 { return 1000 + int64(i/4) }) // pages of 5 end mid-millisecond
		seen, _ := visitAll(t, c, 5)
		assertEachOnce(t, fake, seen)
	})
	t.Run("an answer out of ascending order is an error, not a short listing", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == explorer.ConnectPath {
				http.SetCookie(w, &http.Cookie{Name: explorer.TokenCookie, Value: "t"})
				w.Write([]byte(`{"code":0,"data":{}}`))
				return
			}
			w.Write([]byte(`{"code":0,"data":{"items":[{"id":2,"createTime":20},{"id":1,"createTime":10}],"total":4,"Page":1,"PageSize":2}}`))
		}))
		defer srv.Close()
		c, _ := explorer.NewClient(explorer.Config{URL: srv.URL})
		_, err := c.EachJob(context.Background(), explorer.Filter{}, 2, func(explorer.Job) {})
		if err == nil || !strings.Contains(err.Error(), "not in asc createTime order") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("an empty history costs one request", func(t *testing.T) {
		c := newClient(t, explorertest.New(), explorer.EncodingAuto)
		if seen, n := visitAll(t, c, 10); len(seen) != 0 || n != 1 {
			t.Errorf("visited %d jobs in %d requests", len(seen), n)
		}
	})
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name   string
		quirks explorertest.Quirks
		check  func(error) bool
	}{
		{"an error code in an HTTP 200 answer carries the code and its name", explorertest.Quirks{ErrorCode: explorer.CodeInternalDatabase},
			func(err error) bool {
				var e *explorer.Error
				return errors.As(err, &e) && e.Code == explorer.CodeInternalDatabase && e.Message == "ErrInternalDatabase"
			}},
		{"an HTTP 500 is an error with its status", explorertest.Quirks{HTTPStatus: 500},
			func(err error) bool { var e *explorer.Error; return errors.As(err, &e) && e.HTTPStatus == 500 }},
		{"a truncated answer is invalid JSON", explorertest.Quirks{TruncateBody: true},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "invalid answer (not_json)") }},
		{"a slow Explorer ends with the context's deadline", explorertest.Quirks{Delay: time.Minute},
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := explorertest.New()
			c := newClient(t, fake, explorer.EncodingAuto)
			addJobs(fake, 3, func(i int) int64 { return int64(i + 1) })
			if _, err := c.ListJobs(context.Background(), explorer.Filter{}, 1, 10); err != nil {
				t.Fatal(err)
			}
			fake.SetQuirks(tc.quirks)
			// A deadline far above a request's time on a loaded machine,
			// but for the slow Explorer, whose wait it ends.
			wait := 10 * time.Second
			if tc.quirks.Delay > 0 {
				wait = 200 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := c.EachJob(ctx, explorer.Filter{}, 10, func(explorer.Job) {})
			if !tc.check(err) {
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
}

func TestJobDetail(t *testing.T) {
	fake := explorertest.New()
	c := newClient(t, fake, explorer.EncodingAuto)
	j := fake.AddJob(explorer.Job{WorkflowID: "7", WorkflowName: "pagerank", Status: explorer.StatusSuccess,
		CreateTime: 1657847355906, RunBeginTime: 1657847358000, RunEndTime: 1657847364000})
	t.Run("a job comes with its tasks and their RFC 3339 times", func(t *testing.T) {
		d, err := c.Job(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		tasks := d.Tasks
		d.Tasks = nil
		if !reflect.DeepEqual(*d, j) || len(tasks) < 2 {
			t.Fatalf("got %+v with tasks %+v, want %+v with tasks", d, tasks, j)
		}
		begin, _, err := tasks[0].RunTimes()
		if err != nil || begin != j.RunBeginTime {
			t.Errorf("first task begins at %d (%v), want the job's begin %d", begin, err, j.RunBeginTime)
		}
		if _, end, err := tasks[len(tasks)-1].RunTimes(); err != nil || end != j.RunEndTime {
			t.Errorf("last task ends at %d (%v), want the job's end %d", end, err, j.RunEndTime)
		}
	})
	t.Run("a listing carries the tasks when Explorer sends them, else none", func(t *testing.T) {
		for _, inListing := range []bool{false, true} {
			fake.SetQuirks(explorertest.Quirks{TasksInListing: inListing, TasksNull: true})
			var got []explorer.Task
			if _, err := c.EachJob(context.Background(), explorer.Filter{}, 10, func(j explorer.Job) { got = j.Tasks }); err != nil {
				t.Fatal(err)
			}
			if (got != nil) != inListing {
				t.Errorf("tasks in listing %v: got %+v", inListing, got)
			}
		}
	})
	t.Run("a job that does not exist is a not-found error", func(t *testing.T) {
		_, err := c.Job(context.Background(), 999)
		var e *explorer.Error
		if !errors.As(err, &e) || !e.IsNotFound() {
			t.Errorf("err = %v, want not found", err)
		}
	})
}

func TestTaskRunTimes(t *testing.T) {
	cases := []struct {
		name, begin, end string
		wantBegin        int64
		wantEnd          int64
		wantErr          string
	}{
		{"times with an offset", "2022-07-12T10:33:35+08:00", "2022-07-12T10:33:38+08:00", 1657593215000, 1657593218000, ""},
		{"UTC and milliseconds", "2022-07-12T02:33:35.5Z", "2022-07-12T02:33:38.25Z", 1657593215500, 1657593218250, ""},
		{"not begun", "", "", 0, 0, ""},
		{"running", "2022-07-12T10:33:35-03:00", "", 1657632815000, 0, ""},
		{"a begin without offset", "2022-07-12 10:33:35", "", 0, 0, `task runBeginTime "2022-07-12 10:33:35" is not an RFC 3339 time`},
		{"an end in milliseconds", "2022-07-12T10:33:35+08:00", "1657593218000", 0, 0, `task runEndTime "1657593218000" is not an RFC 3339 time`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, e, err := explorer.Task{RunBeginTime: tc.begin, RunEndTime: tc.end}.RunTimes()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || b != tc.wantBegin || e != tc.wantEnd {
				t.Errorf("got %d, %d, %v; want %d, %d", b, e, err, tc.wantBegin, tc.wantEnd)
			}
		})
	}
}
