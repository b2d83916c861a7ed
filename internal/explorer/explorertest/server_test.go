package explorertest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name      string
		encodings Encodings
		auth      string
		body      string
		method    string
		status    int
		code      int
	}{
		{"the JSON encoding is accepted by default", BothEncodings, bearerJSON("root", "nebula"), connectBody, "POST", 200, 0},
		{"the colon encoding is accepted by default", BothEncodings, bearerColon("root", "nebula"), connectBody, "POST", 200, 0},
		{"the JSON encoding is accepted when only it is", JSONOnly, bearerJSON("root", "nebula"), connectBody, "POST", 200, 0},
		{"the colon encoding is rejected when only JSON is accepted", JSONOnly, bearerColon("root", "nebula"), connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"the colon encoding is accepted when only it is", ColonOnly, bearerColon("root", "nebula"), connectBody, "POST", 200, 0},
		{"the JSON encoding is rejected when only colon is accepted", ColonOnly, bearerJSON("root", "nebula"), connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"a wrong password is unauthorized", BothEncodings, bearerJSON("root", "wrong"), connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"a wrong user is unauthorized", BothEncodings, bearerColon("nobody", "nebula"), connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"a missing Authorization header is unauthorized", BothEncodings, "", connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"Basic instead of Bearer is unauthorized", BothEncodings, "Basic cm9vdDpuZWJ1bGE=", connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"base64 garbage is unauthorized", BothEncodings, "Bearer %%%", connectBody, "POST", 401, explorer.CodeUnauthorized},
		{"a port as a string is a bad parameter", BothEncodings, bearerJSON("root", "nebula"), `{"address": "127.0.0.1", "port": "9669"}`, "POST", 400, explorer.CodeParam},
		{"a missing port is a bad parameter", BothEncodings, bearerJSON("root", "nebula"), `{"address": "127.0.0.1"}`, "POST", 400, explorer.CodeParam},
		{"an empty address is a bad parameter", BothEncodings, bearerJSON("root", "nebula"), `{"address": "", "port": 9669}`, "POST", 400, explorer.CodeParam},
		{"a body that is not JSON is a bad parameter", BothEncodings, bearerJSON("root", "nebula"), `address=x`, "POST", 400, explorer.CodeParam},
		{"GET on connect is not allowed", BothEncodings, bearerJSON("root", "nebula"), "", "GET", 405, explorer.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New()
			e.SetQuirks(Quirks{Encodings: tt.encodings})
			srv := NewServer(e)
			defer srv.Close()
			r := send(t, srv, tt.method, explorer.ConnectPath, tt.auth, "", tt.body)
			if r.status != tt.status || r.env.Code != tt.code {
				t.Fatalf("got HTTP %d code %d (%s), want HTTP %d code %d", r.status, r.env.Code, r.body, tt.status, tt.code)
			}
			if tt.code != 0 {
				if r.env.Message != errorName(tt.code) || !strings.HasPrefix(r.env.Message, "Err") {
					t.Errorf("message %q, want %q", r.env.Message, errorName(tt.code))
				}
				if got := e.Stats(); tt.status != 405 && (got.FailedLogins != 1 || got.Logins != 0) {
					t.Errorf("stats %+v, want one failed login", got)
				}
				return
			}
			if string(r.env.Data) != `{"success":true}` {
				t.Errorf("data %s", r.env.Data)
			}
			if got := e.Stats(); got.Logins != 1 || got.Requests != 1 {
				t.Errorf("stats %+v, want one login in one request", got)
			}
			// The token works.
			if r := send(t, srv, "GET", explorer.JobsPath, "", tokenOf(t, r), ""); r.status != 200 || r.env.Code != 0 {
				t.Errorf("listing with the new token: HTTP %d %s", r.status, r.body)
			}
		})
	}
}

func TestLoginCookie(t *testing.T) {
	tests := []struct {
		name   string
		maxAge time.Duration
		want   string
	}{
		{"the default cookie lives three days", 0, "Max-Age=259200"},
		{"the cookie's Max-Age follows TokenMaxAge", 90 * time.Second, "Max-Age=90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New()
			e.SetQuirks(Quirks{TokenMaxAge: tt.maxAge})
			srv := NewServer(e)
			defer srv.Close()
			r := send(t, srv, "POST", explorer.ConnectPath, bearerColon("root", "nebula"), "", connectBody)
			c := r.header.Get("Set-Cookie")
			for _, part := range []string{explorer.TokenCookie + "=", "Path=/", tt.want, "HttpOnly"} {
				if !strings.Contains(c, part) {
					t.Errorf("Set-Cookie %q lacks %q", c, part)
				}
			}
		})
	}
}

func TestLoginWithChangedCredentials(t *testing.T) {
	e := New()
	e.SetCredentials("admin", "s3cr:et")
	srv := NewServer(e)
	defer srv.Close()
	for _, auth := range []string{bearerColon("admin", "s3cr:et"), bearerJSON("admin", "s3cr:et")} {
		if r := send(t, srv, "POST", explorer.ConnectPath, auth, "", connectBody); r.status != 200 {
			t.Errorf("login with a colon in the password: HTTP %d %s", r.status, r.body)
		}
	}
	if r := send(t, srv, "POST", explorer.ConnectPath, bearerJSON("root", "nebula"), "", connectBody); r.status != 401 {
		t.Errorf("the old credentials still work: HTTP %d", r.status)
	}
}

func TestSession(t *testing.T) {
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		quirks Quirks
		// after logging in at start: the clock moves by advance, then the token is used uses times
		advance time.Duration
		uses    int
		token   string // overrides the token when not ""
		status  int
		code    int
	}{
		{"a fresh token works", Quirks{}, 0, 1, "", 200, 0},
		{"a token works until just before its Max-Age", Quirks{TokenMaxAge: time.Hour}, time.Hour - time.Millisecond, 1, "", 200, 0},
		{"a token expires after its Max-Age", Quirks{TokenMaxAge: time.Hour}, time.Hour, 1, "", 401, explorer.CodeSession},
		{"a default token expires after three days", Quirks{}, 72 * time.Hour, 1, "", 401, explorer.CodeSession},
		{"a token works for TokenUses requests", Quirks{TokenUses: 3}, 0, 3, "", 200, 0},
		{"a token dies after TokenUses requests", Quirks{TokenUses: 3}, 0, 4, "", 401, explorer.CodeSession},
		{"an unknown token is a broken session", Quirks{}, 0, 1, "forged", 401, explorer.CodeSession},
		{"no token is a broken session", Quirks{}, 0, 1, "-", 401, explorer.CodeSession},
		{"an expired token answers HTTP 200 with the quirk", Quirks{TokenMaxAge: time.Minute, AuthErrorHTTP200: true}, time.Minute, 1, "", 200, explorer.CodeSession},
		{"no token answers HTTP 200 with the quirk", Quirks{AuthErrorHTTP200: true}, 0, 1, "-", 200, explorer.CodeSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New()
			now := start
			var mu sync.Mutex
			e.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
			e.SetQuirks(tt.quirks)
			srv := NewServer(e)
			defer srv.Close()
			token := login(t, srv)
			switch tt.token {
			case "-":
				token = ""
			case "":
			default:
				token = tt.token
			}
			mu.Lock()
			now = now.Add(tt.advance)
			mu.Unlock()
			var r reply
			for range tt.uses {
				r = send(t, srv, "GET", explorer.JobsPath, "", token, "")
			}
			if r.status != tt.status || r.env.Code != tt.code {
				t.Fatalf("got HTTP %d code %d (%s), want HTTP %d code %d", r.status, r.env.Code, r.body, tt.status, tt.code)
			}
			if tt.code != 0 && (r.env.Message != "ErrSession" || string(r.env.Data) != "null") {
				t.Errorf("error envelope %s", r.body)
			}
		})
	}
}

func TestFailureQuirks(t *testing.T) {
	e := New()
	e.AddJob(explorer.Job{Name: "a_1", WorkflowID: "1", WorkflowName: "a", Status: 2, CreateTime: 1000})
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)

	t.Run("ErrorCode answers HTTP 200 with the code and its name", func(t *testing.T) {
		e.SetQuirks(Quirks{ErrorCode: explorer.CodeInternalController})
		defer e.SetQuirks(Quirks{})
		for _, path := range []string{explorer.JobsPath, explorer.JobsPath + "/1"} {
			r := send(t, srv, "GET", path, "", token, "")
			if r.status != 200 || r.env.Code != explorer.CodeInternalController ||
				r.env.Message != "ErrInternalController" || string(r.env.Data) != "null" {
				t.Errorf("GET %s: HTTP %d %s", path, r.status, r.body)
			}
		}
		if r := send(t, srv, "POST", explorer.ConnectPath, bearerJSON("root", "nebula"), "", connectBody); r.status != 200 || r.env.Code != 0 {
			t.Errorf("login is spared: HTTP %d %s", r.status, r.body)
		}
	})
	t.Run("an undefined ErrorCode is called ErrUnknown", func(t *testing.T) {
		e.SetQuirks(Quirks{ErrorCode: 12345})
		defer e.SetQuirks(Quirks{})
		if r := send(t, srv, "GET", explorer.JobsPath, "", token, ""); r.env.Code != 12345 || r.env.Message != "ErrUnknown" {
			t.Errorf("HTTP %d %s", r.status, r.body)
		}
	})
	for _, tt := range []struct {
		status, code int
	}{{500, explorer.CodeInternalServer}, {502, explorer.CodeInternalServer}, {503, explorer.CodeInternalServer}, {403, explorer.CodeForbidden}} {
		t.Run("HTTPStatus "+strconv.Itoa(tt.status)+" answers every request with an error envelope", func(t *testing.T) {
			e.SetQuirks(Quirks{HTTPStatus: tt.status})
			defer e.SetQuirks(Quirks{})
			for _, r := range []reply{
				send(t, srv, "GET", explorer.JobsPath, "", token, ""),
				send(t, srv, "POST", explorer.ConnectPath, bearerJSON("root", "nebula"), "", connectBody),
			} {
				if r.status != tt.status || r.env.Code != tt.code || r.env.Message != errorName(tt.code) {
					t.Errorf("HTTP %d %s", r.status, r.body)
				}
			}
		})
	}
	t.Run("TruncateBody makes listing and detail answers invalid JSON", func(t *testing.T) {
		e.SetQuirks(Quirks{TruncateBody: true})
		defer e.SetQuirks(Quirks{})
		for _, path := range []string{explorer.JobsPath, explorer.JobsPath + "/1"} {
			r := send(t, srv, "GET", path, "", token, "")
			if r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
				t.Errorf("GET %s: HTTP %d, valid %v: %s", path, r.status, json.Valid(r.body), r.body)
			}
			if !strings.HasPrefix(string(r.body), `{"code":0`) {
				t.Errorf("GET %s: not the start of an answer: %s", path, r.body)
			}
		}
	})
	t.Run("Delay holds every answer", func(t *testing.T) {
		e.SetQuirks(Quirks{Delay: 30 * time.Millisecond})
		defer e.SetQuirks(Quirks{})
		begin := time.Now()
		if r := send(t, srv, "GET", explorer.JobsPath, "", token, ""); r.status != 200 {
			t.Errorf("HTTP %d", r.status)
		}
		if d := time.Since(begin); d < 30*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})
	t.Run("ListLatency holds a page, and gives up when the request is cancelled", func(t *testing.T) {
		e.SetQuirks(Quirks{ListLatency: time.Hour, ListLatencyPerItem: time.Hour})
		defer e.SetQuirks(Quirks{})
		e.ResetStats()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+explorer.JobsPath, nil)
		req.AddCookie(&http.Cookie{Name: explorer.TokenCookie, Value: login(t, srv)})
		if _, err := srv.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want the deadline", err)
		}
		if s := e.Stats(); s.Lists != 0 {
			t.Errorf("stats %+v: the page was answered", s)
		}
	})
	t.Run("Delay gives up when the request is cancelled", func(t *testing.T) {
		e.SetQuirks(Quirks{Delay: time.Minute})
		defer e.SetQuirks(Quirks{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+explorer.JobsPath, nil)
		begin := time.Now()
		_, err := srv.Client().Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want the deadline", err)
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

// TestWaitsEndWithTheClient: Delay and Hang stop holding a request whose
// client gave up, a login with its body as well as a listing, so that a
// test's server closes at once.
func TestWaitsEndWithTheClient(t *testing.T) {
	for _, hangs := range []bool{false, true} {
		for _, path := range []string{explorer.ConnectPath, explorer.JobsPath} {
			e := New()
			q := Quirks{Delay: time.Minute}
			release := make(chan struct{}) // ends the wait if the client's end does not
			if hangs {
				q = Quirks{Hang: release}
			}
			e.SetQuirks(q)
			returned := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.ServeHTTP(w, r)
				returned <- struct{}{}
			}))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+path, strings.NewReader(`{"address":"127.0.0.1","port":9669}`))
			if _, err := srv.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s, hang %v: err %v, want the deadline", path, hangs, err)
			}
			cancel()
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Errorf("%s, hang %v: still held 10 s after its client gave up", path, hangs)
			}
			close(release)
			srv.Close()
		}
	}
}

func TestRouting(t *testing.T) {
	e := New()
	e.AddJob(explorer.Job{Name: "a_1", WorkflowID: "1", WorkflowName: "a", Status: 2, CreateTime: 1000})
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)
	tests := []struct {
		name, method, path string
		status, code       int
	}{
		{"an unknown path is not found", "GET", "/api-open/v1/nothing", 404, explorer.CodeNotFound},
		{"a path outside the API is not found", "GET", "/", 404, explorer.CodeNotFound},
		{"a trailing slash is not found", "GET", explorer.JobsPath + "/", 404, explorer.CodeNotFound},
		{"an unknown job is not found", "GET", explorer.JobsPath + "/999", 404, explorer.CodeNotFound},
		{"a job id that is not a number is a bad parameter", "GET", explorer.JobsPath + "/abc", 400, explorer.CodeParam},
		{"what the exporter never calls is not found: cancel", "PUT", explorer.JobsPath + "/1/cancel", 404, explorer.CodeNotFound},
		{"what the exporter never calls is not found: a workflow's jobs", "GET", "/api-open/v1/workflows/1/jobs", 404, explorer.CodeNotFound},
		{"POST on the job list is not allowed", "POST", explorer.JobsPath, 405, explorer.CodeBadRequest},
		{"DELETE on a job is not allowed", "DELETE", explorer.JobsPath + "/1", 405, explorer.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, srv, tt.method, tt.path, "", token, `{"input":{}}`)
			if r.status != tt.status || r.env.Code != tt.code || r.env.Message != errorName(tt.code) {
				t.Errorf("got HTTP %d %s, want HTTP %d code %d", r.status, r.body, tt.status, tt.code)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
}

// listingFixture is six jobs of two workflows, with a CreateTime tie (ids 3
// and 4 at 3000) and one undocumented status.
func listingFixture() *Explorer {
	e := New()
	for _, j := range []explorer.Job{
		{Name: "a_1", WorkflowID: "11", WorkflowName: "a", Status: 2, CreateTime: 1000, RunBeginTime: 1100, RunEndTime: 1500},
		{Name: "b_2", WorkflowID: "22", WorkflowName: "b", Status: 3, CreateTime: 2000, RunBeginTime: 2100, RunEndTime: 2500},
		{Name: "a_3", WorkflowID: "11", WorkflowName: "a", Status: 0, CreateTime: 3000},
		{Name: "b_4", WorkflowID: "22", WorkflowName: "b", Status: 1, CreateTime: 3000, RunBeginTime: 3100},
		{Name: "a_5", WorkflowID: "11", WorkflowName: "a", Status: 7, CreateTime: 5000},
		{Name: "a_6", WorkflowID: "11", WorkflowName: "a", Status: 0, CreateTime: 6000},
	} {
		e.AddJob(j)
	}
	return e
}

func TestListing(t *testing.T) {
	e := listingFixture()
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)
	tests := []struct {
		name     string
		base     string
		filter   explorer.Filter
		page     int
		size     int
		maxSize  int
		want     []int64
		total    int
		pageSize int
	}{
		{"the default order is newest first, ties by id", explorer.JobsPath, explorer.Filter{}, 1, 10, 0, []int64{6, 5, 4, 3, 2, 1}, 6, 10},
		{"desc is newest first", explorer.JobsPath, explorer.Filter{OrderByCreateTime: "desc"}, 1, 10, 0, []int64{6, 5, 4, 3, 2, 1}, 6, 10},
		{"asc is oldest first, ties by id", explorer.JobsPath, explorer.Filter{OrderByCreateTime: "asc"}, 1, 10, 0, []int64{1, 2, 3, 4, 5, 6}, 6, 10},
		{"page 2 of size 4 holds the rest", explorer.JobsPath, explorer.Filter{}, 2, 4, 0, []int64{2, 1}, 6, 4},
		{"page 2 of size 2 in asc order", explorer.JobsPath, explorer.Filter{OrderByCreateTime: "asc"}, 2, 2, 0, []int64{3, 4}, 6, 2},
		{"a page past the end is empty", explorer.JobsPath, explorer.Filter{}, 5, 2, 0, []int64{}, 6, 2},
		{"a huge page number is empty", explorer.JobsPath, explorer.Filter{}, 1 << 40, 1 << 30, 0, []int64{}, 6, 1 << 30},
		{"the page size is capped and says so", explorer.JobsPath, explorer.Filter{}, 1, 100, 4, []int64{6, 5, 4, 3}, 6, 4},
		{"the capped size is used for the offset", explorer.JobsPath, explorer.Filter{}, 2, 100, 4, []int64{2, 1}, 6, 4},
		{"a size under the cap is kept", explorer.JobsPath, explorer.Filter{}, 1, 3, 4, []int64{6, 5, 4}, 6, 3},
		{"status 0 filters preparing jobs", explorer.JobsPath, explorer.Filter{Status: intp(0)}, 1, 10, 0, []int64{6, 3}, 2, 10},
		{"an undocumented status filters as any other", explorer.JobsPath, explorer.Filter{Status: intp(7)}, 1, 10, 0, []int64{5}, 1, 10},
		{"a status filter pages over the matches", explorer.JobsPath, explorer.Filter{Status: intp(0), OrderByCreateTime: "asc"}, 2, 1, 0, []int64{6}, 2, 1},
		{"fromCreateTime is inclusive", explorer.JobsPath, explorer.Filter{FromCreateTime: 3000}, 1, 10, 0, []int64{6, 5, 4, 3}, 4, 10},
		{"toCreateTime is inclusive", explorer.JobsPath, explorer.Filter{ToCreateTime: 3000, OrderByCreateTime: "asc"}, 1, 10, 0, []int64{1, 2, 3, 4}, 4, 10},
		{"a window between two times", explorer.JobsPath, explorer.Filter{FromCreateTime: 1001, ToCreateTime: 5000}, 1, 10, 0, []int64{5, 4, 3, 2}, 4, 10},
		{"an empty window", explorer.JobsPath, explorer.Filter{FromCreateTime: 5001, ToCreateTime: 5999}, 1, 10, 0, []int64{}, 0, 10},
		{"a window that ends before it starts is empty", explorer.JobsPath, explorer.Filter{FromCreateTime: 6000, ToCreateTime: 1000}, 1, 10, 0, []int64{}, 0, 10},
		{"a window and a status together", explorer.JobsPath, explorer.Filter{FromCreateTime: 2000, ToCreateTime: 3000, Status: intp(1)}, 1, 10, 0, []int64{4}, 1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.SetQuirks(Quirks{MaxPageSize: tt.maxSize})
			p := listPage(t, srv, token, listPath(tt.base, tt.filter, tt.page, tt.size))
			if p.Items == nil {
				t.Errorf("items is null, want a list")
			}
			if got := ids(p.Items); !slices.Equal(got, tt.want) || p.Total != tt.total || p.Page != tt.page || p.PageSize != tt.pageSize {
				t.Errorf("got ids %v total %d Page %d PageSize %d, want %v %d %d %d", got, p.Total, p.Page, p.PageSize, tt.want, tt.total, tt.page, tt.pageSize)
			}
		})
	}
	e.SetQuirks(Quirks{})

	t.Run("the defaults are page 1 of 10, and the answer says so with capitals", func(t *testing.T) {
		r := send(t, srv, "GET", explorer.JobsPath, "", token, "")
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(r.env.Data, &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["Page"]) != "1" || string(raw["PageSize"]) != "10" || string(raw["total"]) != "6" {
			t.Errorf("data %s", r.env.Data)
		}
	})
	t.Run("items carry all the job's fields and no tasks", func(t *testing.T) {
		r := send(t, srv, "GET", explorer.JobsPath+"?"+rawQuery("pageSize", "1", "page", "4"), "", token, "")
		want := `{"items":[{"id":3,"name":"a_3","workflowId":"11","workflowName":"a","status":0,"runBeginTime":0,"runEndTime":0,"createTime":3000}],"total":6,"Page":4,"PageSize":1}`
		if string(r.env.Data) != want {
			t.Errorf("data\n%s\nwant\n%s", r.env.Data, want)
		}
	})
	t.Run("TasksNull adds tasks null to every item", func(t *testing.T) {
		e.SetQuirks(Quirks{TasksNull: true})
		defer e.SetQuirks(Quirks{})
		r := send(t, srv, "GET", explorer.JobsPath, "", token, "")
		if n := strings.Count(string(r.env.Data), `"tasks":null`); n != 6 {
			t.Errorf("%d items with tasks null, want 6: %s", n, r.env.Data)
		}
		var p explorer.JobPage
		if err := json.Unmarshal(r.env.Data, &p); err != nil || len(p.Items) != 6 {
			t.Errorf("decoding: %v, %d items", err, len(p.Items))
		}
	})
	t.Run("TasksInListing puts in every item the tasks of its detail", func(t *testing.T) {
		e.SetQuirks(Quirks{TasksInListing: true})
		defer e.SetQuirks(Quirks{})
		p := listPage(t, srv, token, explorer.JobsPath)
		for _, j := range p.Items {
			var d explorer.Job
			if err := json.Unmarshal(send(t, srv, "GET", explorer.JobsPath+"/"+strconv.FormatInt(j.ID, 10), "", token, "").env.Data, &d); err != nil {
				t.Fatal(err)
			}
			if len(j.Tasks) == 0 || !reflect.DeepEqual(j, d) {
				t.Errorf("listed %+v, detail %+v", j, d)
			}
		}
	})
	t.Run("TasksInListingOf does so for some workflows, the others say tasks null", func(t *testing.T) {
		e.SetQuirks(Quirks{TasksInListingOf: map[string]bool{"22": true}, TasksNull: true})
		defer e.SetQuirks(Quirks{})
		r := send(t, srv, "GET", explorer.JobsPath, "", token, "")
		if n := strings.Count(string(r.env.Data), `"tasks":null`); n != 4 {
			t.Errorf("%d items with tasks null, want 4: %s", n, r.env.Data)
		}
		var p explorer.JobPage
		if err := json.Unmarshal(r.env.Data, &p); err != nil {
			t.Fatal(err)
		}
		for _, j := range p.Items {
			if (j.WorkflowID == "22") != (j.Tasks != nil) {
				t.Errorf("job %d of workflow %s: tasks %v", j.ID, j.WorkflowID, j.Tasks)
			}
		}
	})
	t.Run("listings are counted", func(t *testing.T) {
		e.ResetStats()
		listPage(t, srv, token, explorer.JobsPath)
		send(t, srv, "GET", explorer.JobsPath+"?page=0", "", token, "")
		if s := e.Stats(); s.Lists != 1 || s.Requests != 2 || s.Logins != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestListingBadParameters(t *testing.T) {
	e := listingFixture()
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)
	for _, tt := range []struct{ name, query string }{
		{"a filter that is not JSON", rawQuery("filter", "{status:2}")},
		{"a filter that is a list", rawQuery("filter", "[1]")},
		{"a status that is a string", rawQuery("filter", `{"status":"2"}`)},
		{"a status that is not an integer", rawQuery("filter", `{"status":2.5}`)},
		{"a time that is a string", rawQuery("filter", `{"fromCreateTime":"yesterday"}`)},
		{"an unknown order", rawQuery("filter", `{"orderByCreateTime":"sideways"}`)},
		{"page 0", rawQuery("page", "0")},
		{"a negative page", rawQuery("page", "-1")},
		{"page size 0", rawQuery("pageSize", "0")},
		{"a page size that is not a number", rawQuery("pageSize", "ten")},
		{"a page that is not an integer", rawQuery("page", "1.5")},
	} {
		t.Run(tt.name+" is a bad parameter", func(t *testing.T) {
			r := send(t, srv, "GET", explorer.JobsPath+"?"+tt.query, "", token, "")
			if r.status != 400 || r.env.Code != explorer.CodeParam || r.env.Message != "ErrParam" {
				t.Errorf("HTTP %d %s", r.status, r.body)
			}
		})
	}
}

func TestOnList(t *testing.T) {
	e := listingFixture()
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)

	var seen []int
	var filters []explorer.Filter
	e.SetQuirks(Quirks{OnList: func(f explorer.Filter, page int) {
		seen = append(seen, page)
		filters = append(filters, f)
		if page == 2 { // a job appears between pages 1 and 2
			e.AddJob(explorer.Job{Name: "b_7", WorkflowID: "22", WorkflowName: "b", CreateTime: 7000})
		}
	}})
	p1 := listPage(t, srv, token, listPath(explorer.JobsPath, explorer.Filter{Status: intp(0)}, 1, 2))
	p2 := listPage(t, srv, token, listPath(explorer.JobsPath, explorer.Filter{}, 2, 2))
	if !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("hook saw pages %v", seen)
	}
	if filters[0].Status == nil || *filters[0].Status != 0 {
		t.Errorf("hook saw filter %+v", filters[0])
	}
	if p1.Total != 2 {
		t.Errorf("page 1 total %d", p1.Total)
	}
	// The new job shifted the desc listing: page 2 now starts one job later.
	if got := ids(p2.Items); !slices.Equal(got, []int64{5, 4}) || p2.Total != 7 {
		t.Errorf("page 2 after the insert: %v total %d, want [5 4] total 7", got, p2.Total)
	}
}

func TestNamesRoundTrip(t *testing.T) {
	names := []string{
		"社区发现_lpa", `quote " and back\slash`, "new\nline\ttab\r", "<script>&amp;</script>",
		"nul\x00bell\x07", "\b\f", "line\u2028sep\u2029", "emoji 🚀", "",
	}
	e := New()
	for i, n := range names {
		e.AddJob(explorer.Job{Name: n + "_1", WorkflowID: strconv.Itoa(i), WorkflowName: n, CreateTime: int64(1000 + i)})
	}
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)
	p := listPage(t, srv, token, listPath(explorer.JobsPath, explorer.Filter{OrderByCreateTime: "asc"}, 1, 100))
	for i, j := range p.Items {
		if j.WorkflowName != names[i] || j.Name != names[i]+"_1" {
			t.Errorf("name %q came back as %q (job %q)", names[i], j.WorkflowName, j.Name)
		}
	}
	t.Run("the listing encoder writes what encoding/json writes", func(t *testing.T) {
		for _, s := range append(names, "bad utf8 \xff\xfe end", "\xe2\x80", "a\u007fb", "é") {
			j := explorer.Job{ID: -3, Name: s, WorkflowID: s, WorkflowName: s, Status: -1, RunBeginTime: 1, RunEndTime: 2, CreateTime: 3}
			// Before Go 1.27, encoding/json escaped U+FFFD.
			marshal := func(j explorer.Job) string {
				b, _ := json.Marshal(j)
				return strings.ReplaceAll(string(b), `\ufffd`, "\uFFFD")
			}
			want := marshal(j)
			if got := appendJob(nil, &j, false, itemQuirks{tasksNull: true}); string(got) != want {
				t.Errorf("%q:\n got %s\nwant %s", s, got, want)
			}
			j.Tasks = []explorer.Task{{ID: s, Name: s, Status: -1, RunBeginTime: s, RunEndTime: s}, {}}
			want = marshal(j)
			if got := appendJob(nil, &j, true, itemQuirks{}); string(got) != want {
				t.Errorf("%q with tasks:\n got %s\nwant %s", s, got, want)
			}
		}
	})
}

// checkTasks fails the test unless tasks are plausible for job j at now: a
// query and 2-4 distinct algorithms with hex ids; times in +08:00 that follow
// each other inside the job's run; statuses that agree with the job's (see
// tasksFor).
func checkTasks(t *testing.T, j explorer.Job, tasks []explorer.Task, now time.Time) {
	t.Helper()
	if len(tasks) < 1 || len(tasks) > 5 || tasks[0].Name != "Query" {
		t.Fatalf("job %d: tasks %+v", j.ID, tasks)
	}
	names := map[string]bool{}
	prevEnd := j.RunBeginTime
	stop := j.RunEndTime
	if !explorer.IsTerminal(j.Status) {
		stop = now.UnixMilli()
	}
	counts := map[int]int{}
	for i, task := range tasks {
		counts[task.Status]++
		if len(task.ID) != 32 || strings.Trim(task.ID, "0123456789abcdef") != "" || names[task.Name] ||
			(i > 0 && !slices.Contains(components[:], task.Name)) {
			t.Errorf("job %d task %d: id %q name %q", j.ID, i, task.ID, task.Name)
		}
		names[task.Name] = true
		begin, end, err := task.RunTimes()
		if err != nil {
			t.Fatalf("job %d task %d: %v", j.ID, i, err)
		}
		for _, s := range []string{task.RunBeginTime, task.RunEndTime} {
			if s != "" && !strings.HasSuffix(s, "+08:00") {
				t.Errorf("job %d task %d: time %q not in +08:00", j.ID, i, s)
			}
		}
		if begin == 0 {
			if end != 0 {
				t.Errorf("job %d task %d ended without beginning: %+v", j.ID, i, task)
			}
			continue
		}
		if begin < prevEnd || (end != 0 && end < begin) || max(begin, end) > stop {
			t.Errorf("job %d (run %d-%d) task %d: times %d-%d out of place", j.ID, j.RunBeginTime, stop, i, begin, end)
		}
		prevEnd = max(begin, end)
	}
	n := len(tasks)
	switch j.Status {
	case explorer.StatusPreparing:
		if counts[0] != n {
			t.Errorf("job %d preparing with a started task: %+v", j.ID, tasks)
		}
	case explorer.StatusSuccess:
		if counts[2] != n {
			t.Errorf("job %d succeeded with tasks %+v", j.ID, tasks)
		}
	case explorer.StatusFailed, explorer.StatusInterrupted, explorer.StatusRunning, explorer.StatusStopping:
		k := slices.IndexFunc(tasks, func(task explorer.Task) bool { return task.Status != explorer.StatusSuccess })
		rest := explorer.StatusPreparing
		if explorer.IsTerminal(j.Status) {
			rest = explorer.StatusInterrupted
		}
		if k < 0 || tasks[k].Status != j.Status || counts[2]+1+counts[rest] != n+boolInt(rest == j.Status) {
			t.Errorf("job %d in status %d has tasks %+v", j.ID, j.Status, tasks)
		}
		if j.RunBeginTime != 0 && explorer.IsTerminal(j.Status) && tasks[k].RunEndTime == "" {
			t.Errorf("job %d: the task it ended at has no end: %+v", j.ID, tasks[k])
		}
	default:
		if counts[j.Status] != n {
			t.Errorf("job %d in status %d has tasks %+v", j.ID, j.Status, tasks)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestDetail(t *testing.T) {
	e := New()
	ms := time.Date(2022, 7, 12, 2, 33, 35, 0, time.UTC).UnixMilli()
	jobs := []explorer.Job{
		{Name: "ok", WorkflowID: "1", WorkflowName: "w", Status: 2, CreateTime: ms - 5000, RunBeginTime: ms, RunEndTime: ms + 90_000},
		{Name: "failed", WorkflowID: "1", WorkflowName: "w", Status: 3, CreateTime: ms - 4000, RunBeginTime: ms, RunEndTime: ms + 60_000},
		{Name: "preparing", WorkflowID: "1", WorkflowName: "w", Status: 0, CreateTime: ms - 3000},
		{Name: "running", WorkflowID: "1", WorkflowName: "w", Status: 1, CreateTime: ms - 2000, RunBeginTime: ms},
		{Name: "odd", WorkflowID: "1", WorkflowName: "w", Status: 7, CreateTime: ms - 1000, RunBeginTime: ms},
	}
	for i := range jobs {
		jobs[i] = e.AddJob(jobs[i])
	}
	e.SetNow(func() time.Time { return time.UnixMilli(ms + 30_000) })
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)

	get := func(t *testing.T, id int64) explorer.Job {
		t.Helper()
		r := send(t, srv, "GET", explorer.JobsPath+"/"+strconv.FormatInt(id, 10), "", token, "")
		if r.status != 200 || r.env.Code != 0 {
			t.Fatalf("HTTP %d %s", r.status, r.body)
		}
		var d explorer.Job
		if err := json.Unmarshal(r.env.Data, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, j := range jobs {
		t.Run("the "+j.Name+" job's detail holds the job and plausible tasks", func(t *testing.T) {
			d := get(t, j.ID)
			tasks := d.Tasks
			d.Tasks = nil
			if !reflect.DeepEqual(d, j) {
				t.Errorf("job %+v, want %+v", d, j)
			}
			checkTasks(t, j, tasks, e.Now())
			if again := get(t, j.ID); !slices.Equal(again.Tasks, tasks) {
				t.Errorf("tasks change between calls: %v, %v", tasks, again.Tasks)
			}
		})
	}
	t.Run("a success's tasks span its run exactly, in +08:00", func(t *testing.T) {
		tasks := get(t, jobs[0].ID).Tasks
		if tasks[0].RunBeginTime != "2022-07-12T10:33:35+08:00" || tasks[len(tasks)-1].RunEndTime != "2022-07-12T10:35:05+08:00" {
			t.Errorf("tasks %+v", tasks)
		}
	})
	t.Run("the jobs of a workflow share its DAG, other workflows have others", func(t *testing.T) {
		names := func(tasks []explorer.Task) (s []string) {
			for _, task := range tasks {
				s = append(s, task.Name)
			}
			return s
		}
		dags := map[string]bool{}
		for w := range 20 {
			a, _ := dag(strconv.Itoa(w))
			dags[strings.Join(a[:], ",")] = true
		}
		if len(dags) < 10 {
			t.Errorf("%d different DAGs among 20 workflows", len(dags))
		}
		if a, b := names(get(t, jobs[0].ID).Tasks), names(get(t, jobs[2].ID).Tasks); !slices.Equal(a, b) {
			t.Errorf("two jobs of one workflow: %v and %v", a, b)
		}
	})
	t.Run("NoGeneratedTasks leaves a job without tasks with tasks null", func(t *testing.T) {
		e.SetQuirks(Quirks{NoGeneratedTasks: true})
		defer e.SetQuirks(Quirks{})
		r := send(t, srv, "GET", explorer.JobsPath+"/"+strconv.FormatInt(jobs[0].ID, 10), "", token, "")
		if !strings.Contains(string(r.env.Data), `"tasks":null`) {
			t.Errorf("detail %s", r.env.Data)
		}
	})
	t.Run("a job stored with tasks is served with those", func(t *testing.T) {
		odd := []explorer.Task{{Name: "", RunBeginTime: "yesterday"}, {ID: "x", Name: "BFS", Status: 2}}
		j := e.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "w", Status: 2, CreateTime: ms, Tasks: odd})
		if got := get(t, j.ID).Tasks; !slices.Equal(got, odd) {
			t.Errorf("tasks %+v, want %+v", got, odd)
		}
	})
	t.Run("details are counted", func(t *testing.T) {
		e.ResetStats()
		get(t, 1)
		send(t, srv, "GET", explorer.JobsPath+"/999", "", token, "")
		if s := e.Stats(); s.Details != 1 || s.Requests != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	e := New()
	w := Workload{Workflows: 5, Seed: 3, Now: time.UnixMilli(1_700_000_000_000)}
	e.AddJobs(w.History(500))
	srv := NewServer(e)
	defer srv.Close()
	token := login(t, srv)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				switch g {
				case 0:
					listPage(t, srv, token, listPath(explorer.JobsPath, explorer.Filter{}, i+1, 25))
				case 1:
					e.AddJob(explorer.Job{WorkflowID: "x", WorkflowName: "x", CreateTime: int64(1_690_000_000_000 + i)})
				case 2:
					w.Step(e, w.Now.Add(time.Duration(i)*time.Minute))
				case 3:
					send(t, srv, "GET", explorer.JobsPath+"/"+strconv.Itoa(i+1), "", token, "")
				}
			}
		})
	}
	wg.Wait()
	checkOrder(t, e)
}
