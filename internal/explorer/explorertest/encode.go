package explorertest

import (
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// cst is the zone of Explorer's task times and job names (the docs' examples are +08:00).
var cst = time.FixedZone("CST", 8*3600)

// appendJob encodes a listing item exactly as encoding/json would encode
// explorer.Job, without reflection; withTasks, with its tasks (those stored,
// or else generated ones). Without tasks it leaves "tasks" out unless the
// quirks ask for "tasks": null, and it leaves out zero run times when the
// quirks ask.
func appendJob(b []byte, j *explorer.Job, withTasks bool, q itemQuirks) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, j.ID, 10)
	b = append(b, `,"name":`...)
	b = appendString(b, j.Name)
	b = append(b, `,"workflowId":`...)
	b = appendString(b, j.WorkflowID)
	b = append(b, `,"workflowName":`...)
	b = appendString(b, j.WorkflowName)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(j.Status), 10)
	if q.caseDuplicateStatus {
		b = append(b, `,"Status":`...)
		b = strconv.AppendInt(b, int64(j.Status)+1, 10)
	}
	if j.RunBeginTime != 0 || !q.omitZeroTimes {
		b = append(b, `,"runBeginTime":`...)
		b = strconv.AppendInt(b, j.RunBeginTime, 10)
	}
	if j.RunEndTime != 0 || !q.omitZeroTimes {
		b = append(b, `,"runEndTime":`...)
		b = strconv.AppendInt(b, j.RunEndTime, 10)
	}
	b = append(b, `,"createTime":`...)
	b = strconv.AppendInt(b, j.CreateTime, 10)
	switch {
	case withTasks && j.Tasks != nil:
		b = append(b, `,"tasks":[`...)
		for i := range j.Tasks {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTask(b, &j.Tasks[i])
		}
		b = append(b, ']')
	case withTasks:
		b = append(b, `,"tasks":`...)
		b = appendPlannedTasks(b, j, q.now)
	case q.tasksNull:
		b = append(b, `,"tasks":null`...)
	}
	return append(b, '}')
}

func appendTask(b []byte, t *explorer.Task) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, t.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, t.Name)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(t.Status), 10)
	b = append(b, `,"runBeginTime":`...)
	b = appendString(b, t.RunBeginTime)
	b = append(b, `,"runEndTime":`...)
	b = appendString(b, t.RunEndTime)
	return append(b, '}')
}

// itemQuirks are the quirks that shape a listing item.
type itemQuirks struct {
	tasksNull, omitZeroTimes bool
	caseDuplicateStatus      bool
	tasks                    bool            // every item carries its tasks
	tasksOf                  map[string]bool // items of these workflow ids do
	now                      time.Time       // for the tasks of running jobs
}

const hexDigits = "0123456789abcdef"

// appendString encodes s as a JSON string the way encoding/json does:
// HTML-safe, invalid UTF-8 replaced by U+FFFD (written as is, like
// encoding/json since Go 1.27), U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jobName is Explorer's job name: the workflow name, "_", and the creation
// time as YYYYMMDDhhmmss in +08:00 (workflow_q745a_20220715090915).
func jobName(workflowName string, t time.Time) string {
	b := make([]byte, 0, len(workflowName)+15)
	b = append(b, workflowName...)
	b = append(b, '_')
	return string(appendStamp(b, t))
}

func appendStamp(b []byte, t time.Time) []byte {
	t = t.In(cst)
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendDigits(b, y, 4)
	b = appendDigits(b, int(mo), 2)
	b = appendDigits(b, d, 2)
	b = appendDigits(b, h, 2)
	b = appendDigits(b, mi, 2)
	return appendDigits(b, s, 2)
}

func appendDigits(b []byte, v, width int) []byte {
	var d [8]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// splitmix64 is a fast, well-mixing hash of one word (and the step of the SplitMix64 generator).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// components are the task names of the generated DAGs: graph queries and algorithms.
var components = [...]string{
	"BFS", "PageRank", "LPA", "WCC", "KCore", "SSSP", "Louvain", "DegreeCentrality",
	"TriangleCount", "Jaccard", "HANP", "Node2Vec", "ClosenessCentrality",
	"BetweennessCentrality", "ClusteringCoefficient",
}

// appendTaskTime appends a millisecond time as Explorer's task times are:
// RFC 3339 in the +08:00 of its docs, with milliseconds when they are not
// zero (so task times stay inside the job's run to the millisecond); by
// hand, as time.Format is most of the cost of a page of tasks.
func appendTaskTime(b []byte, ms int64) []byte {
	t := time.UnixMilli(ms).In(cst)
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.999Z07:00")
	}
	h, mi, sec := t.Clock()
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if frac := t.Nanosecond() / 1e6; frac != 0 {
		b = append(b, '.')
		b = appendDigits(b, frac, 3)
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return append(b, "+08:00"...)
}

// taskTime formats a millisecond time as Explorer's task times do; "" for 0.
func taskTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return string(appendTaskTime(nil, ms))
}

// dag returns the task names of a workflow's DAG: a graph query, then 1-4
// distinct algorithms, the same for every job of the workflow (they depend
// on its id only, so a renamed workflow keeps them).
func dag(workflowID string) (names [5]string, n int) {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(workflowID); i++ {
		h = (h ^ uint64(workflowID[i])) * 1099511628211
	}
	h = splitmix64(h)
	n = 2 + int(h%4)
	names[0] = "Query"
	var used uint32
	for i := 1; i < n; i++ {
		h = splitmix64(h)
		k := int(h % uint64(len(components)))
		for used&(1<<k) != 0 {
			k = (k + 1) % len(components)
		}
		used |= 1 << k
		names[i] = components[k]
	}
	return names, n
}

// plannedTask is a generated task before it is written out. Times are ms,
// 0 for none.
type plannedTask struct {
	id         [16]byte
	name       string
	status     int
	begin, end int64
}

// planTasks makes up the tasks of j, the same ones every time for the same
// job state: its workflow's DAG (2-5 tasks), run one after another over the
// job's run time, each taking a share of it.
//   - preparing: no task has started (status 0, no times);
//   - success: all succeeded;
//   - failed or interrupted: the tasks before one succeeded, that one ended
//     in the job's status at the job's end; the ones after it are listed as
//     interrupted without times, or left out (half of the jobs each);
//   - running or stopping: the tasks before one succeeded, that one is in the
//     job's status since its begin, the ones after it wait (status 0);
//   - an undocumented status is copied to every task with the job's times.
func planTasks(j *explorer.Job, now time.Time) (tasks [5]plannedTask, n int) {
	names, n := dag(j.WorkflowID)
	h := splitmix64(uint64(j.ID) ^ 0x7a5c_5eed)
	for i := range n {
		for k := range 2 {
			x := splitmix64(h + uint64(2*i+k+1))
			for m := range 8 {
				tasks[i].id[8*k+m] = byte(x >> (8 * m))
			}
		}
		tasks[i].name = names[i]
	}
	begin, end := j.RunBeginTime, j.RunEndTime
	switch j.Status {
	case explorer.StatusPreparing:
		return tasks, n
	case explorer.StatusSuccess, explorer.StatusFailed, explorer.StatusInterrupted,
		explorer.StatusRunning, explorer.StatusStopping:
	default:
		for i := range n {
			tasks[i].status, tasks[i].begin, tasks[i].end = j.Status, begin, end
		}
		return tasks, n
	}
	if begin == 0 {
		return tasks, n // no run time to share out
	}
	last := n - 1 // the task the job ended or stands at
	if j.Status != explorer.StatusSuccess {
		last = int((h >> 40) % uint64(n))
	}
	stop := end
	if !explorer.IsTerminal(j.Status) || stop < begin {
		stop = max(begin, now.UnixMilli())
	}
	// Shares of the run: weights 1-4, cumulated.
	var cumul [6]int64
	for i := range n {
		cumul[i+1] = cumul[i] + 1 + int64(splitmix64(h^uint64(i))%4)
	}
	bound := func(k int) int64 { return begin + (stop-begin)*cumul[k]/cumul[last+1] }
	for i := 0; i < last; i++ {
		tasks[i].status, tasks[i].begin, tasks[i].end = explorer.StatusSuccess, bound(i), bound(i+1)
	}
	tasks[last].status, tasks[last].begin = j.Status, bound(last)
	if explorer.IsTerminal(j.Status) {
		tasks[last].end = stop
	}
	switch {
	case j.Status == explorer.StatusSuccess:
	case !explorer.IsTerminal(j.Status):
		// the ones after wait: status 0, no times
	case h>>63 == 0:
		n = last + 1
	default:
		for i := last + 1; i < n; i++ {
			tasks[i].status = explorer.StatusInterrupted
		}
	}
	return tasks, n
}

// tasksFor returns the generated tasks of j (see planTasks).
func tasksFor(j *explorer.Job, now time.Time) []explorer.Task {
	planned, n := planTasks(j, now)
	tasks := make([]explorer.Task, n)
	for i, p := range planned[:n] {
		tasks[i] = explorer.Task{ID: hex.EncodeToString(p.id[:]), Name: p.name, Status: p.status,
			RunBeginTime: taskTime(p.begin), RunEndTime: taskTime(p.end)}
	}
	return tasks
}

// appendPlannedTasks encodes the generated tasks of j as appendTasks would
// encode tasksFor's, without building them first.
func appendPlannedTasks(b []byte, j *explorer.Job, now time.Time) []byte {
	planned, n := planTasks(j, now)
	b = append(b, '[')
	for i, p := range planned[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = hex.AppendEncode(b, p.id[:])
		b = append(b, `","name":`...)
		b = appendString(b, p.name)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(p.status), 10)
		b = append(b, `,"runBeginTime":"`...)
		if p.begin != 0 {
			b = appendTaskTime(b, p.begin)
		}
		b = append(b, `","runEndTime":"`...)
		if p.end != 0 {
			b = appendTaskTime(b, p.end)
		}
		b = append(b, `"}`...)
	}
	return append(b, ']')
}
