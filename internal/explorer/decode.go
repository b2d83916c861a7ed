package explorer

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// The decoder reads an answer as a stream of JSON tokens, so an answer
// costs memory for what it holds (at most a page of items), not for its
// bytes. It matches member names case-insensitively, as encoding/json does
// and as Explorer needs (it capitalises Page and PageSize), but refuses an
// object that names one field twice in any spelling ("status" and "Status"):
// which one wins would be the decoder's whim. Unknown members are skipped.

// maxBody bounds the bytes of one answer, after decompression: a page of
// 1000 jobs with their tasks is about 1 MB, a job with 10,000 tasks 1.5 MB.
// A listing may have maxItemBytes per job asked for, if that is more.
const (
	maxBody      = 8 << 20
	maxItemBytes = 4 << 10
)

// listingLimit is the bound of a listing page's bytes.
func listingLimit(pageSize int) int64 {
	return max(maxBody, int64(pageSize)*maxItemBytes)
}

// maxRun bounds the bytes between two quotes of an answer: no string (a
// name, a time) nor any other value is that long, and the decoder would
// have to hold it whole.
const maxRun = 1 << 20

// errTooLarge ends the body of an answer longer than its limit; errLongValue
// one with a value longer than maxRun.
var (
	errTooLarge  = errors.New("answer larger than the limit")
	errLongValue = errors.New("a value longer than the limit")
)

// cappedReader reads at most n bytes, then fails with errTooLarge (not EOF,
// which would read as a cut answer), and fails with errLongValue at more
// than maxRun bytes without a quote that is not escaped.
// It keeps the error of the body, so that a connection lost or timed out
// mid-answer is not taken for an answer that is not JSON.
type cappedReader struct {
	r    io.Reader
	n    int64
	run  int  // bytes since the last quote
	prev byte // the last byte read
	long bool // a value was too long
	err  error
}

func (c *cappedReader) Read(p []byte) (int, error) {
	switch {
	case c.long:
		return 0, errLongValue
	case c.n <= 0:
		return 0, errTooLarge
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	for b := p[:n]; len(b) > 0; {
		i := bytes.IndexByte(b, '"')
		if i < 0 {
			c.run += len(b)
			c.prev = b[len(b)-1]
			break
		}
		escaped := (i > 0 && b[i-1] == '\\') || (i == 0 && c.prev == '\\')
		c.run += i + 1
		if !escaped {
			c.long = c.long || c.run > maxRun
			c.run = 0
		}
		c.prev = '"'
		b = b[i+1:]
	}
	if c.long = c.long || c.run > maxRun; c.long {
		return 0, errLongValue // what was read is dropped: the answer is refused
	}
	return n, err
}

// dataFunc decodes the envelope's data; the decoder stands before it.
type dataFunc func(dec *jsontext.Decoder) error

// decode reads one answer of at most limit bytes: a non-2xx status or a non-zero code is an
// *Error; an answer that is not what was asked is an *InvalidAnswerError.
// data (nil: data is skipped) decodes the data of a code-0 answer.
func decode(op string, status int, body io.Reader, limit int64, data dataFunc) error {
	ok := status >= 200 && status <= 299
	if !ok {
		data = nil // an error answer: only its code and message matter
	}
	capped := &cappedReader{r: body, n: limit}
	dec := jsontext.NewDecoder(capped, jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	env, err := readEnvelope(dec, data)
	if capped.err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, capped.err)
	}
	if err == nil {
		if _, eof := dec.ReadToken(); eof != io.EOF {
			err = invalid("not_json", "trailing data after the answer")
		}
	}
	var inv *InvalidAnswerError
	switch {
	case !ok:
		e := &Error{Op: op, HTTPStatus: status}
		if env.code != nil {
			e.Code, e.Message = *env.code, truncate(env.message)
		}
		return e
	case env.code != nil && *env.code != CodeOK:
		// An error answer, whatever its data looked like.
		return &Error{Op: op, HTTPStatus: status, Code: *env.code, Message: truncate(env.message)}
	case errors.As(err, &inv):
		inv.Op = op
		return inv
	case errors.Is(err, errTooLarge):
		return &InvalidAnswerError{Op: op, Reason: "too_large", Detail: fmt.Sprintf("more than %d bytes", limit)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err) // given up while waiting to decode (for a page buffer)
	case errors.Is(err, errLongValue):
		return &InvalidAnswerError{Op: op, Reason: "too_large", Detail: fmt.Sprintf("a value of more than %d bytes", maxRun)}
	case err != nil:
		return &InvalidAnswerError{Op: op, Reason: "not_json", Detail: "answer is not valid JSON: " + err.Error(), err: err}
	case env.code == nil:
		return &InvalidAnswerError{Op: op, Reason: "no_code", Detail: "answer has no code"}
	case data != nil && !env.data:
		return &InvalidAnswerError{Op: op, Reason: "no_data", Detail: "answer has no data"}
	}
	return nil
}

// envelope is what decode learnt of the envelope.
type envelope struct {
	code    *int
	message string
	data    bool // data was there and not null
}

var envelopeFields = []string{"code", "message", "data"}

// readEnvelope reads the envelope. An *InvalidAnswerError of the data ends
// it, unless the code has not come yet: then the rest of the data is
// skipped to read the code, which wins if it is an error.
func readEnvelope(dec *jsontext.Decoder, data dataFunc) (env envelope, err error) {
	var dataErr error
	err = readObject(dec, envelopeFields, func(field int) error {
		switch field {
		case 0:
			code, err := readInt(dec)
			env.code = &code
			return err
		case 1:
			var err error
			env.message, err = readString(dec)
			return err
		}
		if data == nil || dec.PeekKind() == 'n' || (env.code != nil && *env.code != CodeOK) {
			return dec.SkipValue()
		}
		env.data = true
		depth := dec.StackDepth()
		err := data(dec)
		var inv *InvalidAnswerError
		if err == nil || !errors.As(err, &inv) {
			return err
		}
		dataErr = err
		if env.code != nil || skipTo(dec, depth) != nil {
			return errStop
		}
		return nil
	})
	if dataErr != nil {
		err = dataErr
	}
	return env, err
}

// errStop ends the reading of an answer found invalid.
var errStop = errors.New("stop")

// skipTo reads tokens until the decoder is back at depth, past the value
// that was being read there.
func skipTo(dec *jsontext.Decoder, depth int) error {
	for dec.StackDepth() > depth {
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
	}
	return nil
}

// invalid is an *InvalidAnswerError without its Op, which decode fills in.
func invalid(reason, format string, args ...any) *InvalidAnswerError {
	return &InvalidAnswerError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// readObject reads an object whose known members are fields (matched
// case-insensitively): member calls read for each, which must consume its
// value; unknown members are skipped; a field named twice is refused. A
// null is an empty object.
func readObject(dec *jsontext.Decoder, fields []string, read func(field int) error) error {
	switch dec.PeekKind() {
	case 'n':
		return dec.SkipValue()
	case '{':
	default:
		return wrongKind(dec, "an object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	var seen uint32
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		field := lookup(name, fields)
		if field < 0 {
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<field) != 0 {
			return invalid("duplicate_key", "member %q named twice (JSON names match in any case)", fields[field])
		}
		seen |= 1 << field
		if err := read(field); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// lookup returns the index of the field a quoted member name matches in
// any case, or -1.
func lookup(quoted jsontext.Value, fields []string) int {
	name := []byte(quoted)
	if bytes.IndexByte(name, '\\') >= 0 {
		var err error
		if name, err = jsontext.AppendUnquote(nil, quoted); err != nil {
			return -1
		}
	} else {
		name = name[1 : len(name)-1]
	}
	for i, f := range fields {
		if len(f) == len(name) && bytes.EqualFold(name, []byte(f)) {
			return i
		}
	}
	return -1
}

// wrongKind skips a value of the wrong kind and says what was expected.
func wrongKind(dec *jsontext.Decoder, want string) error {
	kind := dec.PeekKind()
	if err := dec.SkipValue(); err != nil {
		return err
	}
	return invalid("bad_data", "unexpected data: %s where %s belongs", kindName(kind), want)
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "nothing"
}

// readInt reads an integer; null is 0.
func readInt(dec *jsontext.Decoder) (int, error) {
	n, err := readInt64(dec)
	if err == nil && int64(int(n)) != n {
		err = invalid("bad_data", "unexpected data: %d out of range", n)
	}
	return int(n), err
}

// readInt64 reads an integer; null is 0.
func readInt64(dec *jsontext.Decoder) (int64, error) {
	switch dec.PeekKind() {
	case 'n':
		return 0, dec.SkipValue()
	case '0':
	default:
		return 0, wrongKind(dec, "an integer")
	}
	v, err := dec.ReadValue()
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(string(v), 10, 64)
	if perr != nil {
		return 0, invalid("bad_data", "unexpected data: %.40s is not an integer in range", v)
	}
	return n, nil
}

// readString reads a string; null is "".
func readString(dec *jsontext.Decoder) (string, error) {
	return readStringIn(dec, nil)
}

// interned holds the strings a page repeats (workflow ids and names, task
// names): one copy each, not one per item.
type interned map[string]string

// maxInterned bounds a page's interned strings.
const maxInterned = 1024

// readStringIn reads a string, interned in in if not nil; null is "".
func readStringIn(dec *jsontext.Decoder, in interned) (string, error) {
	switch dec.PeekKind() {
	case 'n':
		return "", dec.SkipValue()
	case '"':
	default:
		return "", wrongKind(dec, "a string")
	}
	v, err := dec.ReadValue()
	if err != nil {
		return "", err
	}
	raw := []byte(v[1 : len(v)-1])
	if !utf8.Valid(raw) {
		// Each invalid byte becomes U+FFFD, as encoding/json has it.
		v = replaceInvalidUTF8(v)
		raw = []byte(v[1 : len(v)-1])
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		if raw, err = jsontext.AppendUnquote(nil, v); err != nil {
			return "", err
		}
	}
	if in == nil {
		return string(raw), nil
	}
	if s, ok := in[string(raw)]; ok {
		return s, nil
	}
	s := string(raw)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s, nil
}

// readArray reads an array, calling item for each element; null is none.
func readArray(dec *jsontext.Decoder, item func() error) error {
	switch dec.PeekKind() {
	case 'n':
		return dec.SkipValue()
	case '[':
	default:
		return wrongKind(dec, "an array")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != ']' {
		if err := item(); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

var jobFields = []string{"id", "name", "workflowId", "workflowName", "status", "runBeginTime", "runEndTime", "createTime", "tasks"}

// readJob reads one job; a null job is an invalid answer (not a job with
// empty fields). Its tasks are appended to *tasks, and j.Tasks is their
// part of that array: the jobs of a page share one.
func readJob(dec *jsontext.Decoder, j *Job, in interned, tasks *[]Task) error {
	if dec.PeekKind() == 'n' {
		_ = dec.SkipValue()
		return invalid("null_item", "a job is null")
	}
	return readObject(dec, jobFields, func(field int) (err error) {
		switch field {
		case 0:
			j.ID, err = readInt64(dec)
		case 1:
			j.Name, err = readString(dec)
		case 2:
			j.WorkflowID, err = readStringIn(dec, in)
		case 3:
			j.WorkflowName, err = readStringIn(dec, in)
		case 4:
			j.Status, err = readInt(dec)
		case 5:
			j.RunBeginTime, err = readInt64(dec)
		case 6:
			j.RunEndTime, err = readInt64(dec)
		case 7:
			j.CreateTime, err = readInt64(dec)
		case 8:
			carried, start := dec.PeekKind() == '[', len(*tasks)
			err = readArray(dec, func() error {
				*tasks = append(*tasks, Task{})
				return readTask(dec, &(*tasks)[len(*tasks)-1], in)
			})
			if carried {
				j.Tasks = (*tasks)[start:len(*tasks):len(*tasks)]
				if j.Tasks == nil {
					j.Tasks = []Task{} // carried, maybe none: not nil
				}
			}
		}
		return err
	})
}

var taskFields = []string{"id", "name", "status", "runBeginTime", "runEndTime"}

func readTask(dec *jsontext.Decoder, t *Task, in interned) error {
	if dec.PeekKind() == 'n' {
		_ = dec.SkipValue()
		return invalid("null_item", "a task is null")
	}
	return readObject(dec, taskFields, func(field int) (err error) {
		switch field {
		case 0:
			t.ID, err = readString(dec)
		case 1:
			t.Name, err = readStringIn(dec, in)
		case 2:
			t.Status, err = readInt(dec)
		case 3:
			t.RunBeginTime, err = readString(dec)
		case 4:
			t.RunEndTime, err = readString(dec)
		}
		return err
	})
}

var pageFields = []string{"items", "total", "Page", "PageSize"}

// readPage reads a listing page into buf's array (nil: a new one), calling
// check on each job as it is read (before the next one is), and refuses
// more than maxItems items: a page larger than asked for is not what was
// asked, and would cost memory.
func readPage(dec *jsontext.Decoder, p *JobPage, maxItems int, buf *pageBuffer, check func(j *Job) error) error {
	items := false
	if buf == nil {
		buf = &pageBuffer{in: interned{}}
	}
	buf.tasks = buf.tasks[:0]
	in := buf.in
	err := readObject(dec, pageFields, func(field int) (err error) {
		switch field {
		case 0:
			items = true
			p.Items = buf.items[:0]
			if p.Items == nil {
				p.Items = []Job{}
			}
			defer func() { buf.items = p.Items }() // keep what it grew to
			err = readArray(dec, func() error {
				if len(p.Items) == maxItems {
					return invalid("page_size", "more than the %d items asked for", maxItems)
				}
				p.Items = append(p.Items, Job{})
				j := &p.Items[len(p.Items)-1]
				if err := readJob(dec, j, in, &buf.tasks); err != nil {
					return err
				}
				return check(j)
			})
		case 1:
			p.Total, err = readInt(dec)
		case 2:
			p.Page, err = readInt(dec)
		case 3:
			p.PageSize, err = readInt(dec)
		}
		return err
	})
	if err == nil && !items {
		err = invalid("bad_data", "unexpected data: a page without items")
	}
	return err
}

// replaceInvalidUTF8 returns b with each byte that is not part of valid
// UTF-8 replaced by U+FFFD.
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}
