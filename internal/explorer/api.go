// Package explorer is the client for NebulaGraph Explorer's open workflow API:
// login, the session token, paged job listings and typed errors.
package explorer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Paths of the open API, relative to the Explorer base URL.
const (
	ConnectPath = "/api-open/v1/connect"
	JobsPath    = "/api-open/v1/jobs"
	// TokenCookie is the cookie that carries the session token.
	TokenCookie = "explorer_token"
)

// Explorer's error codes (the "code" field of the envelope).
const (
	CodeOK                 = 0
	CodeBadRequest         = 40004000
	CodeParam              = 40004001
	CodeUnauthorized       = 40104000
	CodeSession            = 40104001
	CodeForbidden          = 40304000
	CodeNotFound           = 40404000
	CodeInternalServer     = 50004000
	CodeInternalDatabase   = 50004001
	CodeInternalController = 50004002
	CodeInternalLicense    = 50004003
	CodeUnknown            = 90004000
)

// Job status codes. Success, Failed and Interrupted are terminal.
const (
	StatusPreparing   = 0
	StatusRunning     = 1
	StatusSuccess     = 2
	StatusFailed      = 3
	StatusInterrupted = 4
	StatusStopping    = 5
)

// StatusLabels are the label values of the documented status codes, indexed by code.
var StatusLabels = [...]string{"preparing", "running", "success", "failed", "interrupted", "stopping"}

// StatusUnknown is the label value of any status code Explorer does not document.
const StatusUnknown = "unknown"

// IsTerminal reports whether a job in this status can no longer change.
func IsTerminal(code int) bool {
	return code == StatusSuccess || code == StatusFailed || code == StatusInterrupted
}

// Job is one item of a job listing, or the answer of GET jobs/<id>. Times
// are milliseconds since the epoch; RunBeginTime and RunEndTime are 0 until
// the job starts and ends. Tasks is nil when the answer does not carry them
// (listings of many Explorer versions say "tasks": null; the detail carries
// them), and empty, not nil, for "tasks": [].
type Job struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	WorkflowID   string `json:"workflowId"`
	WorkflowName string `json:"workflowName"`
	Status       int    `json:"status"`
	RunBeginTime int64  `json:"runBeginTime"`
	RunEndTime   int64  `json:"runEndTime"`
	CreateTime   int64  `json:"createTime"`
	Tasks        []Task `json:"tasks"`
}

// Task is one component instance of a job (a BFS, a PageRank, ...). Its
// times are RFC 3339 strings with an offset, as Explorer sends them, unlike
// the job's milliseconds: RunTimes converts them.
type Task struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Status       int    `json:"status"`
	RunBeginTime string `json:"runBeginTime"`
	RunEndTime   string `json:"runEndTime"`
}

// RunTimes returns the task's run times in milliseconds since the epoch. An
// empty time is 0: the task has not begun, or not ended. A time that is not
// RFC 3339 is an error that names it (cut short); callers skip that task's
// duration and count it, it is never fatal.
func (t Task) RunTimes() (beginMS, endMS int64, err error) {
	if beginMS, err = parseTaskTime("runBeginTime", t.RunBeginTime); err != nil {
		return 0, 0, err
	}
	if endMS, err = parseTaskTime("runEndTime", t.RunEndTime); err != nil {
		return 0, 0, err
	}
	return beginMS, endMS, nil
}

func parseTaskTime(field, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("task %s %q is not an RFC 3339 time", field, truncate(s))
	}
	return tm.UnixMilli(), nil
}

// JobPage is the data of a job listing. Explorer capitalises Page and PageSize.
type JobPage struct {
	Items    []Job `json:"items"`
	Total    int   `json:"total"`
	Page     int   `json:"Page"`
	PageSize int   `json:"PageSize"`
}

// Filter is the "filter" query parameter of a job listing. Zero fields are omitted.
type Filter struct {
	Status            *int   `json:"status,omitempty"`
	FromCreateTime    int64  `json:"fromCreateTime,omitempty"`
	ToCreateTime      int64  `json:"toCreateTime,omitempty"`
	OrderByCreateTime string `json:"orderByCreateTime,omitempty"` // "asc" or "desc" (Explorer's default)
}

// Query encodes a listing request as Explorer expects it: filter as URL-encoded JSON.
func (f Filter) Query(page, pageSize int) url.Values {
	v := url.Values{}
	if b, _ := json.Marshal(f); string(b) != "{}" {
		v.Set("filter", string(b))
	}
	v.Set("pageSize", strconv.Itoa(pageSize))
	v.Set("page", strconv.Itoa(page))
	return v
}

// errorNames are the error names of Explorer's codes, as its docs list them.
var errorNames = map[int]string{
	CodeBadRequest:         "ErrBadRequest",
	CodeParam:              "ErrParam",
	CodeUnauthorized:       "ErrUnauthorized",
	CodeSession:            "ErrSession",
	CodeForbidden:          "ErrForbidden",
	CodeNotFound:           "ErrNotFound",
	CodeInternalServer:     "ErrInternalServer",
	CodeInternalDatabase:   "ErrInternalDatabase",
	CodeInternalController: "ErrInternalController",
	CodeInternalLicense:    "ErrInternalLicense",
	CodeUnknown:            "ErrUnknown",
}

// ErrorName is the name of an Explorer error code from its docs' table;
// any other code is "ErrUnknown", so the names are a bounded set.
func ErrorName(code int) string {
	if name, ok := errorNames[code]; ok {
		return name
	}
	return errorNames[CodeUnknown]
}

// Error is a failure Explorer reported: a non-2xx HTTP status, a non-zero code, or both.
type Error struct {
	Op         string // what the client was doing, e.g. "list jobs"
	HTTPStatus int
	Code       int    // Explorer's code, 0 if the body had none
	Message    string // Explorer's error name, e.g. ErrSession
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s: explorer answered HTTP %d, code %d (%s)", e.Op, e.HTTPStatus, e.Code, e.Message)
	}
	if e.HTTPStatus >= 300 && e.HTTPStatus <= 399 {
		return fmt.Sprintf("%s: explorer answered HTTP %d, a redirect, which is never followed (check explorer.url)", e.Op, e.HTTPStatus)
	}
	return fmt.Sprintf("%s: explorer answered HTTP %d", e.Op, e.HTTPStatus)
}

// IsAuth reports whether the error asks the client to log in again.
func (e *Error) IsAuth() bool {
	return e.HTTPStatus == 401 || e.Code == CodeUnauthorized || e.Code == CodeSession
}

// IsRefusedLogin reports whether /connect refused the credentials.
func (e *Error) IsRefusedLogin() bool {
	return e.IsAuth() || e.HTTPStatus == 403 || e.Code == CodeForbidden
}

// IsNotFound reports whether the resource does not exist.
func (e *Error) IsNotFound() bool {
	return e.Code == CodeNotFound || (e.Code == 0 && e.HTTPStatus == 404)
}

// ErrLoginRefused is wrapped by the error of a login Explorer refused (bad
// credentials, locked account): retrying at once will not help.
var ErrLoginRefused = errors.New("explorer refused the login")

// InvalidAnswerError is an answer that is not what was asked: not JSON, not
// the envelope, a job outside the listing's filter, the detail of another
// job, ... The exporter distrusts Explorer: such an answer fails the sync
// rather than becoming wrong values.
type InvalidAnswerError struct {
	Op string // what the client was doing, e.g. "list jobs"
	// Reason is one of a fixed set, for a metric label: not_json, no_code,
	// no_data, bad_data, too_large, duplicate_key, null_item,
	// item_outside_filter, page_size, order, page_ignored, wrong_job.
	Reason string
	Detail string // what was wrong, for the log
	err    error
}

func (e *InvalidAnswerError) Error() string {
	return e.Op + ": invalid answer (" + e.Reason + "): " + e.Detail
}

func (e *InvalidAnswerError) Unwrap() error { return e.err }

// RequestTimeoutError is a request that ran out of its own time
// (Config.RequestTimeout, the exporter's explorer.timeout), as opposed to
// the caller's context ending.
type RequestTimeoutError struct {
	Op    string
	Limit time.Duration
	Err   error
}

func (e *RequestTimeoutError) Error() string {
	return fmt.Sprintf("%s: no complete answer within explorer.timeout (%v): %v", e.Op, e.Limit, e.Err)
}

func (e *RequestTimeoutError) Unwrap() error { return e.Err }

// IsRequestTimeout reports whether err is a request that ran out of its own
// time limit (explorer.timeout) rather than of the caller's.
func IsRequestTimeout(err error) bool {
	var e *RequestTimeoutError
	return errors.As(err, &e)
}
