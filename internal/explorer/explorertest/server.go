package explorertest

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

const (
	maxRequestBody = 1 << 20
)

// errorName returns the envelope message Explorer uses for code ("ErrUnknown" for codes it does not define).
func errorName(code int) string { return explorer.ErrorName(code) }

// codeForStatus is the error code that goes with an HTTP status for Quirks.HTTPStatus.
func codeForStatus(status int) int {
	switch {
	case status >= 500:
		return explorer.CodeInternalServer
	case status == http.StatusUnauthorized:
		return explorer.CodeUnauthorized
	case status == http.StatusForbidden:
		return explorer.CodeForbidden
	case status == http.StatusNotFound:
		return explorer.CodeNotFound
	case status >= 400:
		return explorer.CodeBadRequest
	default:
		return explorer.CodeUnknown
	}
}

// ServeHTTP answers one request of the open API.
func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	q := e.quirks.Load()
	if q.Delay > 0 || q.Hang != nil {
		// Read the body first: until it is read the server does not notice
		// a client that gives up, and the wait would hold the handler (and
		// the test server's Close) to its end.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if q.Delay > 0 {
		t := time.NewTimer(q.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if q.Hang != nil {
		select {
		case <-q.Hang:
		case <-r.Context().Done():
			return
		}
	}
	if !sleepPerItem(r, q) {
		return
	}
	if q.HTTPStatus != 0 {
		writeError(w, q.HTTPStatus, codeForStatus(q.HTTPStatus))
		return
	}
	if rd := q.Redirect; rd != nil && r.URL.Path == rd.Path {
		http.Redirect(w, r, rd.Location, rd.Status)
		return
	}
	if q.Gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		gz := &gzipWriter{ResponseWriter: w, gz: gzip.NewWriter(w)}
		defer gz.gz.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w = gz
	}

	path := r.URL.Path
	if path == explorer.ConnectPath {
		if !allowMethod(w, r, http.MethodPost) {
			return
		}
		e.connect(w, r, q)
		return
	}
	handler, methods := e.route(path)
	if handler == nil {
		writeError(w, http.StatusNotFound, explorer.CodeNotFound)
		return
	}
	if !allowMethod(w, r, methods...) {
		return
	}
	if q.ErrorCode != 0 {
		writeError(w, http.StatusOK, q.ErrorCode)
		return
	}
	if !e.authenticate(r, q) {
		status := http.StatusUnauthorized
		if q.AuthErrorHTTP200 {
			status = http.StatusOK
		}
		writeError(w, status, explorer.CodeSession)
		return
	}
	handler(w, r, q)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, q *Quirks)

// route finds the handler of an API path and the methods it allows; nil if
// the path is unknown. The fake serves what the exporter calls: the listing
// and a job's detail.
func (e *Explorer) route(path string) (handlerFunc, []string) {
	switch {
	case path == explorer.JobsPath:
		return e.list, []string{http.MethodGet}
	case strings.HasPrefix(path, explorer.JobsPath+"/"):
		id := strings.TrimPrefix(path, explorer.JobsPath+"/")
		if id == "" || strings.Contains(id, "/") {
			return nil, nil
		}
		return func(w http.ResponseWriter, r *http.Request, q *Quirks) { e.detail(w, q, id) }, []string{http.MethodGet}
	}
	return nil, nil
}

func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, explorer.CodeBadRequest)
	return false
}

// answer is the envelope as the fake writes it.
type answer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

func writeError(w http.ResponseWriter, status, code int) {
	writeJSON(w, status, answer{Code: code, Message: errorName(code)}, false)
}

func writeOK(w http.ResponseWriter, data any, truncate bool) {
	writeJSON(w, http.StatusOK, answer{Code: explorer.CodeOK, Message: "Success", Data: data}, truncate)
}

func writeJSON(w http.ResponseWriter, status int, v any, truncate bool) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("explorertest: " + err.Error()) // only our own types are encoded
	}
	writeBody(w, status, b, truncate)
}

func writeBody(w http.ResponseWriter, status int, b []byte, truncate bool) {
	if truncate {
		b = b[:len(b)/2]
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if _, gz := w.(*gzipWriter); !gz {
		h.Set("Content-Length", strconv.Itoa(len(b)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writePadded writes an answer whose envelope starts with a "padding"
// member of n bytes, written in chunks (a padded answer may be huge).
func writePadded(w http.ResponseWriter, b []byte, n int) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"padding":"`)
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return // the client gave up
		}
		n -= k
	}
	_, _ = io.WriteString(w, `",`)
	_, _ = w.Write(b[1:])
}

// gzipWriter compresses an answer (Quirks.Gzip).
type gzipWriter struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (g *gzipWriter) Write(b []byte) (int, error) { return g.gz.Write(b) }

// connect is POST /api-open/v1/connect: check the body and the Bearer credentials, issue a token.
func (e *Explorer) connect(w http.ResponseWriter, r *http.Request, q *Quirks) {
	if !validConnectBody(r.Body) {
		e.failedLogins.Add(1)
		writeError(w, http.StatusBadRequest, explorer.CodeParam)
		return
	}
	user, password, enc, ok := parseBearer(r.Header.Get("Authorization"))
	switch {
	case ok && enc == JSONOnly:
		e.connectJSON.Add(1)
	case ok:
		e.connectColon.Add(1)
	}
	e.authMu.Lock()
	ok = ok && !q.RefuseLogins && (q.Encodings == BothEncodings || q.Encodings == enc) &&
		user == e.user && password == e.password
	e.authMu.Unlock()
	if !ok {
		e.failedLogins.Add(1)
		writeError(w, http.StatusUnauthorized, explorer.CodeUnauthorized)
		return
	}

	maxAge := q.TokenMaxAge
	if maxAge <= 0 {
		maxAge = DefaultTokenMaxAge
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	now := e.Now()
	e.authMu.Lock()
	for t, s := range e.sessions { // keep the map small across many logins
		if !now.Before(s.expires) {
			delete(e.sessions, t)
		}
	}
	e.sessions[token] = &session{expires: now.Add(maxAge)}
	e.authMu.Unlock()
	e.logins.Add(1)

	http.SetCookie(w, &http.Cookie{
		Name:     explorer.TokenCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   max(1, int(maxAge/time.Second)),
		HttpOnly: true,
	})
	writeOK(w, map[string]bool{"success": true}, false)
}

// validConnectBody reports whether body is {"address": non-empty string, "port": integer 1-65535}.
func validConnectBody(body io.Reader) bool {
	b, err := io.ReadAll(io.LimitReader(body, maxRequestBody))
	if err != nil {
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return false
	}
	var address string
	if json.Unmarshal(fields["address"], &address) != nil || strings.TrimSpace(address) == "" {
		return false
	}
	p := bytes.TrimSpace(fields["port"])
	if len(p) == 0 || (p[0] != '-' && (p[0] < '0' || p[0] > '9')) { // a JSON number, not a string
		return false
	}
	var port int
	return json.Unmarshal(p, &port) == nil && port >= 1 && port <= 65535
}

// parseBearer decodes "Bearer <base64>" in either encoding and says which one it was.
func parseBearer(header string) (user, password string, enc Encodings, ok bool) {
	scheme, b64, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", "", 0, false
	}
	b64 = strings.TrimSpace(b64)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return "", "", 0, false
		}
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		var pair []string
		if json.Unmarshal(t, &pair) != nil || len(pair) != 2 {
			return "", "", 0, false
		}
		return pair[0], pair[1], JSONOnly, true
	}
	user, password, found = strings.Cut(string(raw), ":")
	return user, password, ColonOnly, found
}

// authenticate checks the explorer_token cookie and counts one use of it.
func (e *Explorer) authenticate(r *http.Request, q *Quirks) bool {
	c, err := r.Cookie(explorer.TokenCookie)
	if err != nil {
		return false
	}
	now := e.Now()
	e.authMu.Lock()
	defer e.authMu.Unlock()
	s := e.sessions[c.Value]
	switch {
	case s == nil:
		return false
	case !now.Before(s.expires), q.TokenUses > 0 && s.uses >= q.TokenUses:
		delete(e.sessions, c.Value)
		return false
	}
	s.uses++
	return true
}

// listing is a parsed listing request.
type listing struct {
	filter     explorer.Filter
	asc        bool
	page, size int
}

// parseListing reads filter, pageSize and page from the query string.
func parseListing(r *http.Request) (listing, bool) {
	v := r.URL.Query()
	l := listing{page: 1, size: 10}
	if s := v.Get("filter"); s != "" {
		if json.Unmarshal([]byte(s), &l.filter) != nil {
			return l, false
		}
	}
	switch strings.ToLower(l.filter.OrderByCreateTime) {
	case "", "desc":
	case "asc":
		l.asc = true
	default:
		return l, false
	}
	for _, p := range []struct {
		name string
		to   *int
	}{{"pageSize", &l.size}, {"page", &l.page}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return l, false
			}
			*p.to = n
		}
	}
	return l, true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// list is GET /api-open/v1/jobs.
func (e *Explorer) list(w http.ResponseWriter, r *http.Request, q *Quirks) {
	l, ok := parseListing(r)
	if !ok {
		writeError(w, http.StatusBadRequest, explorer.CodeParam)
		return
	}
	if q.MaxPageSize > 0 {
		l.size = min(l.size, q.MaxPageSize)
	}
	if q.OnList != nil {
		q.OnList(l.filter, l.page)
	}
	bp := bufPool.Get().(*[]byte)
	if q.IgnorePage {
		l.page = 1
	}
	b, items := e.appendPage((*bp)[:0], l, q)
	if d := q.ListLatency + time.Duration(items)*q.ListLatencyPerItem; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	e.lists.Add(1)
	if q.Padding > 0 {
		writePadded(w, b, q.Padding)
	} else {
		writeBody(w, http.StatusOK, b, q.TruncateBody)
	}
	if cap(b) <= 8<<20 {
		*bp = b
		bufPool.Put(bp)
	}
}

// appendPage encodes the envelope of one listing page. Without a status
// filter it touches only the page's jobs.
// It returns the page and how many items it holds.
func (e *Explorer) appendPage(b []byte, l listing, q *Quirks) ([]byte, int) {
	items := itemQuirks{tasksNull: q.TasksNull, omitZeroTimes: q.OmitZeroTimes, caseDuplicateStatus: q.CaseDuplicateStatus,
		tasks: q.TasksInListing, tasksOf: q.TasksInListingOf, now: e.Now()}
	if q.IgnoreStatusFilter {
		l.filter.Status = nil
	}
	if q.IgnoreTimeFilter {
		l.filter.FromCreateTime, l.filter.ToCreateTime = 0, 0
	}
	if q.IgnoreOrder {
		l.asc = false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	from, to := l.filter.FromCreateTime, l.filter.ToCreateTime
	if q.ExclusiveTimeFilter { // 0 is no bound
		if from != 0 {
			from++
		}
		if to != 0 {
			to--
		}
	}
	jobs := e.window(from, to)
	offset := len(jobs) // past the end unless the multiplication fits
	if l.page-1 <= len(jobs)/l.size {
		offset = (l.page - 1) * l.size
	}

	b = append(b, `{"code":0,"message":"Success","data":{"items":[`...)
	emitted := 0
	emit := func(j *explorer.Job) {
		if emitted > 0 {
			b = append(b, ',')
		}
		withTasks := (items.tasks || items.tasksOf[j.WorkflowID]) && (j.Tasks != nil || !q.NoGeneratedTasks)
		b = appendJob(b, j, withTasks, items)
		emitted++
	}
	total := 0
	if l.filter.Status == nil {
		total = len(jobs)
		n := max(0, min(l.size, total-offset))
		for k := range n {
			i := offset + k
			if !l.asc {
				i = total - 1 - i
			}
			emit(&jobs[i])
		}
	} else {
		for k := range jobs {
			i := k
			if !l.asc {
				i = len(jobs) - 1 - k
			}
			j := &jobs[i]
			if j.Status != *l.filter.Status {
				continue
			}
			if total >= offset && total-offset < l.size {
				emit(j)
			}
			total++
		}
	}
	for k := range q.ExtraItems {
		emit(&explorer.Job{ID: -1 - int64(k), Name: "extra", WorkflowID: "1", WorkflowName: "extra", CreateTime: math.MaxInt64})
	}
	if q.NullItem {
		if emitted > 0 {
			b = append(b, ',')
		}
		b = append(b, "null"...)
	}
	if q.Total != nil {
		total = *q.Total
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"Page":`...)
	b = strconv.AppendInt(b, int64(l.page), 10)
	b = append(b, `,"PageSize":`...)
	b = strconv.AppendInt(b, int64(l.size), 10)
	return append(b, "}}"...), emitted
}

// window returns the jobs with from <= CreateTime <= to; a zero bound is no bound.
func (e *Explorer) window(from, to int64) []explorer.Job {
	lo, hi := 0, len(e.jobs)
	if from != 0 {
		lo = searchCreateTime(e.jobs, from)
	}
	if to != 0 && to != math.MaxInt64 {
		hi = searchCreateTime(e.jobs, to+1)
	}
	return e.jobs[lo:max(lo, hi)]
}

// searchCreateTime returns the index of the first job with CreateTime >= t.
func searchCreateTime(jobs []explorer.Job, t int64) int {
	lo, hi := 0, len(jobs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if jobs[m].CreateTime < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// jobID parses the <job_id> of a path.
func jobID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// detail is GET /api-open/v1/jobs/<id>.
func (e *Explorer) detail(w http.ResponseWriter, q *Quirks, idText string) {
	id, ok := jobID(idText)
	if !ok {
		writeError(w, http.StatusBadRequest, explorer.CodeParam)
		return
	}
	j, ok := e.Job(id)
	if !ok {
		writeError(w, http.StatusNotFound, explorer.CodeNotFound)
		return
	}
	if q.WrongDetail {
		j = e.neighbour(id)
	}
	e.details.Add(1)
	if j.Tasks == nil && !q.NoGeneratedTasks {
		j.Tasks = tasksFor(&j, e.Now())
	}
	if q.Padding > 0 {
		b, _ := json.Marshal(answer{Code: explorer.CodeOK, Message: "Success", Data: j})
		writePadded(w, b, q.Padding)
		return
	}
	writeOK(w, j, q.TruncateBody)
}

// neighbour returns the job stored after job id, or before it if it is the last.
func (e *Explorer) neighbour(id int64) explorer.Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, _ := e.findLocked(id)
	if i+1 < len(e.jobs) {
		return e.jobs[i+1]
	}
	return e.jobs[max(0, i-1)]
}

// workflowNameLocked returns the name of workflowID on its newest job.
func (e *Explorer) workflowNameLocked(workflowID string) (string, bool) {
	for i := len(e.jobs) - 1; i >= 0; i-- {
		if e.jobs[i].WorkflowID == workflowID {
			return e.jobs[i].WorkflowName, true
		}
	}
	return "", false
}

// sleepPerItem sleeps Quirks.DelayPerItem for each item of a listing's page
// size; false if the request was cancelled meanwhile.
func sleepPerItem(r *http.Request, q *Quirks) bool {
	if q.DelayPerItem <= 0 || r.URL.Path != explorer.JobsPath {
		return true
	}
	size, _ := strconv.Atoi(r.URL.Query().Get("pageSize"))
	if q.MaxPageSize > 0 {
		size = min(size, q.MaxPageSize)
	}
	t := time.NewTimer(time.Duration(max(size, 0)) * q.DelayPerItem)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
