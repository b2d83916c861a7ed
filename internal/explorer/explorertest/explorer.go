// Package explorertest is a fake NebulaGraph Explorer open API for tests,
// benchmarks and the demo.
//
// An Explorer is an http.Handler that serves the workflow job API as
// explorer-api.md describes it: login with either Bearer encoding, the
// explorer_token cookie, offset-paged job listings with the capitalised
// Page/PageSize, job details with RFC 3339 task times, and the error envelope.
// Quirks switch on the behaviours real Explorers differ in or fail with.
//
// Jobs are kept in a slice sorted by (CreateTime, ID), so a listing without a
// status or name filter costs O(log n + page size) even with a million jobs.
package explorertest

import (
	"cmp"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// DefaultTokenMaxAge is how long a session token lives unless Quirks.TokenMaxAge says otherwise.
const DefaultTokenMaxAge = 259200 * time.Second

// Encodings says which encodings of the Bearer credentials /connect accepts.
type Encodings int

const (
	// BothEncodings accepts base64 of ["user","pass"] and of user:pass.
	BothEncodings Encodings = iota
	// JSONOnly accepts only base64 of the JSON array ["user","pass"] (the Chinese docs).
	JSONOnly
	// ColonOnly accepts only base64 of user:pass (the English docs).
	ColonOnly
)

// Quirks are the behaviours a test can switch on. The zero value is a
// well-behaved Explorer. SetQuirks replaces the whole set atomically.
type Quirks struct {
	// MaxPageSize caps pageSize (0 = no cap); the answer's PageSize says the size used.
	MaxPageSize int
	// TokenMaxAge is the token's real lifetime and the cookie's Max-Age in whole seconds, at
	// least 1 (0 = DefaultTokenMaxAge).
	// It applies to tokens issued after it is set.
	TokenMaxAge time.Duration
	// TokenUses ends a token after this many authenticated requests (0 = never).
	TokenUses int
	// Encodings says which Bearer encodings /connect accepts.
	Encodings Encodings
	// AuthErrorHTTP200 answers a missing, unknown, expired or used-up token with
	// HTTP 200 and code 40104001 instead of HTTP 401 and code 40104001.
	AuthErrorHTTP200 bool
	// ErrorCode makes every call except /connect answer HTTP 200 with this code,
	// its error name as message and data null (0 = off).
	ErrorCode int
	// HTTPStatus makes every request, /connect included (Explorer or its proxy
	// is down), answer this HTTP status with an error envelope: 50004000 for
	// 5xx, the matching 4xx code otherwise (0 = off).
	HTTPStatus int
	// TruncateBody cuts listing and detail answers after half their bytes (invalid JSON).
	TruncateBody bool
	// Delay is slept before every answer; a cancelled request stops waiting and gets no answer.
	Delay time.Duration
	// ListLatency and ListLatencyPerItem are slept after a listing page is
	// computed, per page and per item on it, like a database answering
	// (e.g. 5 ms + 5 µs per item); a cancelled request stops waiting.
	ListLatency, ListLatencyPerItem time.Duration
	// TasksNull adds "tasks": null to the listing items that carry no tasks,
	// as some versions do (without it, such items have no "tasks" key).
	TasksNull bool
	// TasksInListing makes every listing item carry its tasks, as in the
	// job's detail; TasksInListingOf does so for the workflows (by id) it
	// holds. A job's tasks are those it was stored with, if not nil, or
	// else generated from the job's state (see Workload).
	TasksInListing   bool
	TasksInListingOf map[string]bool
	// NoGeneratedTasks leaves jobs stored without tasks without any: their
	// detail (and listing item, when it carries tasks) says "tasks": null.
	NoGeneratedTasks bool
	// ExclusiveTimeFilter makes fromCreateTime and toCreateTime exclusive
	// bounds (the docs do not say which they are; inclusive by default).
	ExclusiveTimeFilter bool
	// OmitZeroTimes leaves runBeginTime and runEndTime out of listing items
	// while they are 0, as the docs allow ("0 (or absent)").
	OmitZeroTimes bool
	// RefuseLogins refuses every /connect, whatever the credentials.
	RefuseLogins bool
	// Hang holds every request until the channel is closed or the request is
	// cancelled (its client gave up), which then gets no answer.
	Hang <-chan struct{}

	// Misbehaviours: answers that do not match the request.

	// IgnoreStatusFilter lists jobs of every status whatever the filter asks.
	IgnoreStatusFilter bool
	// IgnoreTimeFilter lists jobs of every createTime whatever the filter asks.
	IgnoreTimeFilter bool
	// IgnoreOrder lists jobs newest first whatever the filter asks.
	IgnoreOrder bool
	// IgnorePage answers page 1 whatever page is asked.
	IgnorePage bool
	// WrongDetail answers GET jobs/<id> with the job stored after it (or before it, for the last).
	WrongDetail bool
	// NullItem appends a null item to every listing page.
	NullItem bool
	// CaseDuplicateStatus adds "Status" after each item's "status", with another value.
	CaseDuplicateStatus bool
	// Total, if not nil, is the total every listing answers instead of the real one.
	Total *int
	// ExtraItems adds this many made-up items to every listing page, beyond the page size.
	ExtraItems int
	// Padding adds a member "padding" of this many bytes to every listing and
	// detail answer, before the data.
	Padding int
	// Gzip compresses every answer when the request accepts gzip.
	Gzip bool
	// Redirect answers requests for its Path with its Status and Location.
	Redirect *Redirect

	// DelayPerItem is slept, besides Delay, before a listing answer for
	// each item of its page size, as a database takes longer for a larger
	// page (0 = off).
	DelayPerItem time.Duration
	// OnList is called, without any lock held, before each listing page is
	// computed, with the page's filter and page number: it may add, change or
	// delete jobs "between page requests".
	OnList func(f explorer.Filter, page int)
}

// Redirect is a redirect the fake answers (Quirks.Redirect).
type Redirect struct {
	Path     string // the API path redirected, e.g. explorer.ConnectPath
	Status   int    // 301, 302, 307, 308
	Location string
}

// Stats counts what the fake has served since New or ResetStats.
type Stats struct {
	Logins       int // successful /connect calls
	FailedLogins int // /connect calls refused for bad credentials, encoding or body
	Lists        int // listing pages answered with code 0 (truncated ones included)
	Details      int // job details answered with code 0 (truncated ones included)
	Requests     int // every HTTP request, login and failures included
	ConnectJSON  int // /connect calls with credentials in the JSON encoding, refused ones included
	ConnectColon int // /connect calls with credentials in the colon encoding, refused ones included
}

// Explorer is a fake NebulaGraph Explorer. It implements http.Handler and is
// safe for concurrent use. Create it with New.
type Explorer struct {
	mu      sync.RWMutex
	jobs    []explorer.Job // sorted by (CreateTime, ID)
	maxID   int64          // the largest ID ever stored; new IDs are maxID+1
	ordered bool           // IDs increase along jobs: find by binary search on ID
	pos     map[int64]int  // ID -> index in jobs; used when !ordered, valid when posOK
	posOK   bool

	authMu   sync.Mutex
	user     string
	password string
	sessions map[string]*session

	quirks atomic.Pointer[Quirks]
	now    atomic.Pointer[func() time.Time]

	logins, failedLogins, lists, details, requests, connectJSON, connectColon atomic.Int64
}

type session struct {
	expires time.Time
	uses    int
}

// New returns an empty fake Explorer that accepts user "root" with password
// "nebula" in both login encodings and issues tokens with Max-Age 259200.
func New() *Explorer {
	e := &Explorer{
		ordered:  true,
		user:     "root",
		password: "nebula",
		sessions: map[string]*session{},
	}
	e.quirks.Store(&Quirks{})
	e.SetNow(nil)
	return e
}

// NewServer starts an httptest.Server on 127.0.0.1 that serves e. Close it when done.
func NewServer(e *Explorer) *httptest.Server {
	return httptest.NewServer(e)
}

// SetQuirks replaces all quirks at once.
func (e *Explorer) SetQuirks(q Quirks) {
	e.quirks.Store(&q)
}

// Quirks returns the quirks in force.
func (e *Explorer) Quirks() Quirks {
	return *e.quirks.Load()
}

// SetCredentials changes the account /connect accepts. Tokens already issued stay valid.
func (e *Explorer) SetCredentials(user, password string) {
	e.authMu.Lock()
	defer e.authMu.Unlock()
	e.user, e.password = user, password
}

// SetNow sets the clock used for token expiry, default CreateTime, cancel
// and created jobs; nil restores time.Now.
func (e *Explorer) SetNow(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	e.now.Store(&now)
}

// Now returns the fake's current time (see SetNow).
func (e *Explorer) Now() time.Time {
	return (*e.now.Load())()
}

// Stats returns the request counters.
func (e *Explorer) Stats() Stats {
	return Stats{
		Logins:       int(e.logins.Load()),
		FailedLogins: int(e.failedLogins.Load()),
		Lists:        int(e.lists.Load()),
		Details:      int(e.details.Load()),
		Requests:     int(e.requests.Load()),
		ConnectJSON:  int(e.connectJSON.Load()),
		ConnectColon: int(e.connectColon.Load()),
	}
}

// ResetStats sets all request counters to zero.
func (e *Explorer) ResetStats() {
	e.logins.Store(0)
	e.failedLogins.Store(0)
	e.lists.Store(0)
	e.details.Store(0)
	e.requests.Store(0)
	e.connectJSON.Store(0)
	e.connectColon.Store(0)
}

// compareJobs orders jobs by (CreateTime, ID), the order of the store.
func compareJobs(a, b *explorer.Job) int {
	if c := cmp.Compare(a.CreateTime, b.CreateTime); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// AddJob stores j and returns it as stored: a zero ID becomes the next ID
// (one more than any ID stored so far), a zero CreateTime becomes e.Now().
// A job older than the newest is inserted in order, as a "late-visible" job.
// AddJob panics if a job with j's ID exists.
func (e *Explorer) AddJob(j explorer.Job) explorer.Job {
	nowMS := e.Now().UnixMilli()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addLocked(j, nowMS)
}

func (e *Explorer) addLocked(j explorer.Job, nowMS int64) explorer.Job {
	if j.ID == 0 {
		j.ID = e.maxID + 1
	} else if _, ok := e.findLocked(j.ID); ok {
		panic(fmt.Sprintf("explorertest: AddJob: job %d exists", j.ID))
	}
	if j.CreateTime == 0 {
		j.CreateTime = nowMS
	}
	e.maxID = max(e.maxID, j.ID)
	e.insertLocked(j)
	return j
}

// insertLocked puts j at its place in the order, keeping ordered and pos up to date.
func (e *Explorer) insertLocked(j explorer.Job) {
	n := len(e.jobs)
	if n == 0 || compareJobs(&e.jobs[n-1], &j) < 0 {
		e.jobs = append(e.jobs, j)
		if n > 0 && e.jobs[n-1].ID > j.ID {
			e.ordered = false
		}
		if !e.ordered && e.posOK {
			e.pos[j.ID] = n
		}
		return
	}
	i := sort.Search(n, func(i int) bool { return compareJobs(&e.jobs[i], &j) > 0 })
	e.jobs = slices.Insert(e.jobs, i, j)
	if (i > 0 && e.jobs[i-1].ID > j.ID) || e.jobs[i+1].ID < j.ID {
		e.ordered = false
	}
	e.posOK = false
}

// AddJobs stores many jobs at once, like AddJob for each (zero IDs are
// assigned in slice order), but fast for a million jobs: it appends, and
// sorts only if the jobs do not already follow the stored ones in
// (CreateTime, ID) order. It panics on a duplicate ID.
func (e *Explorer) AddJobs(jobs []explorer.Job) {
	nowMS := e.Now().UnixMilli()
	e.mu.Lock()
	defer e.mu.Unlock()
	start := len(e.jobs)
	e.jobs = slices.Grow(e.jobs, len(jobs))
	fresh := true // every ID is above every ID before it: no duplicates possible
	for _, j := range jobs {
		if j.ID == 0 {
			j.ID = e.maxID + 1
		} else if j.ID <= e.maxID {
			fresh = false
		}
		if j.CreateTime == 0 {
			j.CreateTime = nowMS
		}
		e.maxID = max(e.maxID, j.ID)
		e.jobs = append(e.jobs, j)
	}
	sorted := true
	for i := max(start, 1); i < len(e.jobs); i++ {
		if compareJobs(&e.jobs[i-1], &e.jobs[i]) >= 0 {
			sorted = false
			break
		}
	}
	if !fresh {
		seen := make(map[int64]struct{}, len(e.jobs))
		for i := range e.jobs {
			if _, dup := seen[e.jobs[i].ID]; dup {
				id := e.jobs[i].ID
				e.jobs = e.jobs[:start]
				panic(fmt.Sprintf("explorertest: AddJobs: job %d exists", id))
			}
			seen[e.jobs[i].ID] = struct{}{}
		}
	}
	if !sorted {
		slices.SortFunc(e.jobs, func(a, b explorer.Job) int { return compareJobs(&a, &b) })
	}
	e.reindexLocked()
}

// reindexLocked recomputes ordered and, when IDs are not in order, invalidates pos.
func (e *Explorer) reindexLocked() {
	e.ordered = true
	for i := 1; i < len(e.jobs); i++ {
		if e.jobs[i-1].ID >= e.jobs[i].ID {
			e.ordered = false
			break
		}
	}
	e.pos, e.posOK = nil, false
}

// findLocked returns the index of job id. It may rebuild pos, so it needs the write lock.
func (e *Explorer) findLocked(id int64) (int, bool) {
	if !e.ordered && !e.posOK {
		e.reindexLocked()
		if !e.ordered {
			e.pos = make(map[int64]int, len(e.jobs))
			for i := range e.jobs {
				e.pos[e.jobs[i].ID] = i
			}
			e.posOK = true
		}
	}
	if e.ordered {
		i := sort.Search(len(e.jobs), func(i int) bool { return e.jobs[i].ID >= id })
		return i, i < len(e.jobs) && e.jobs[i].ID == id
	}
	i, ok := e.pos[id]
	return i, ok
}

// UpdateJob calls fn on a copy of job id and stores the result; it reports
// false if there is no such job. fn may change CreateTime (the job moves to
// its new place in the order) but not ID (UpdateJob panics). fn runs with the
// store locked: it must not call the Explorer.
func (e *Explorer) UpdateJob(id int64, fn func(*explorer.Job)) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.findLocked(id)
	if !ok {
		return false
	}
	j := e.jobs[i]
	fn(&j)
	if j.ID != id {
		panic(fmt.Sprintf("explorertest: UpdateJob: fn changed the ID of job %d to %d", id, j.ID))
	}
	if j.CreateTime == e.jobs[i].CreateTime {
		e.jobs[i] = j
		return true
	}
	e.jobs = slices.Delete(e.jobs, i, i+1)
	e.posOK = false
	e.insertLocked(j)
	return true
}

// DeleteJob removes job id; it reports false if there is no such job. IDs are never reused.
func (e *Explorer) DeleteJob(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.findLocked(id)
	if !ok {
		return false
	}
	e.jobs = slices.Delete(e.jobs, i, i+1)
	e.posOK = false
	return true
}

// DeleteJobsFunc removes every job for which del returns true, in one pass,
// and returns how many it removed. del runs with the store locked: it must
// not call the Explorer.
func (e *Explorer) DeleteJobsFunc(del func(*explorer.Job) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.jobs)
	e.jobs = slices.DeleteFunc(e.jobs, func(j explorer.Job) bool { return del(&j) })
	e.posOK = false
	return n - len(e.jobs)
}

// RenameWorkflow sets WorkflowName on every job of workflowID and returns how many jobs it changed.
func (e *Explorer) RenameWorkflow(workflowID, newName string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for i := range e.jobs {
		if e.jobs[i].WorkflowID == workflowID {
			e.jobs[i].WorkflowName = newName
			n++
		}
	}
	return n
}

// Jobs returns a copy of all jobs in ascending (CreateTime, ID) order.
func (e *Explorer) Jobs() []explorer.Job {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.jobs)
}

// Len returns how many jobs are stored.
func (e *Explorer) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.jobs)
}

// Job returns job id.
func (e *Explorer) Job(id int64) (explorer.Job, bool) {
	e.mu.Lock() // findLocked may rebuild the index
	defer e.mu.Unlock()
	i, ok := e.findLocked(id)
	if !ok {
		return explorer.Job{}, false
	}
	return e.jobs[i], true
}
