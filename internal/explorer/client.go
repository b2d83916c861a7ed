package explorer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Login encodings of the Bearer credential: the two language versions of the
// docs disagree, so a client must support both.
const (
	EncodingAuto  = "auto"  // try JSON, then colon; remember the one that worked
	EncodingJSON  = "json"  // base64 of ["user","pass"] (Chinese docs)
	EncodingColon = "colon" // base64 of user:pass (English docs)
)

// maxBody bounds what one answer may hold, so a broken server cannot exhaust memory.
const maxBody = 64 << 20

// bodyBuffers keep answers' bytes between requests: a sync reads hundreds of
// pages of the same size, and growing a new buffer for each is most of the
// exporter's garbage.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Config is what the client needs to reach and log in to Explorer.
type Config struct {
	URL          string                 // base URL, e.g. http://127.0.0.1:7002
	Username     string                 // NebulaGraph account
	Password     func() (string, error) // read at each login, so a rotated password_file is picked up
	GraphAddress string                 // graphd address Explorer connects to
	GraphPort    int
	Encoding     string       // EncodingAuto (default), EncodingJSON or EncodingColon
	HTTPClient   *http.Client // carries TLS and the per-request timeout
	UserAgent    string
}

// Client talks to one Explorer. It logs in lazily, renews the session token
// before its Max-Age runs out and logs in again (retrying the request once)
// when Explorer says the session is gone. Safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	now  func() time.Time

	mu       sync.Mutex
	token    string
	renewAt  time.Time // zero: no known expiry
	encoding string    // the encoding that last worked (or the configured one)
}

// NewClient checks the config and returns a client; it does not contact Explorer.
func NewClient(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("explorer URL %q: want http(s)://host[:port]", cfg.URL)
	}
	switch cfg.Encoding {
	case "":
		cfg.Encoding = EncodingAuto
	case EncodingAuto, EncodingJSON, EncodingColon:
	default:
		return nil, fmt.Errorf("unknown auth encoding %q: want auto, json or colon", cfg.Encoding)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Password == nil {
		cfg.Password = func() (string, error) { return "", nil }
	}
	c := &Client{cfg: cfg, base: base, now: time.Now, encoding: cfg.Encoding}
	return c, nil
}

// ListJobs fetches one page of the job listing as Explorer answers it.
func (c *Client) ListJobs(ctx context.Context, f Filter, page, pageSize int) (*JobPage, error) {
	var p JobPage
	if err := c.call(ctx, "list jobs", http.MethodGet, JobsPath, f.Query(page, pageSize), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Job fetches one job with its tasks.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	var j Job
	path := JobsPath + "/" + strconv.FormatInt(id, 10)
	if err := c.call(ctx, "get job "+strconv.FormatInt(id, 10), http.MethodGet, path, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// EachJob visits every job that matches f exactly once, oldest first, and
// returns the number of requests it made. f's createTime bounds are inclusive.
//
// Offset paging over a changing listing counts jobs twice or misses them, and
// deep offsets are costly for Explorer's database. So EachJob pages by key:
// it asks in ascending createTime from (just before) the createTime of the
// last job it saw, skipping the jobs it already visited. Only when one
// millisecond holds more than a page of jobs does it step the page number.
// It never trusts the requested page size (servers cap it) and stops on an
// empty page or when the answer's total is reached.
//
// The next page is fetched while visit works through the current one, so a
// long listing costs little more than fetching its pages.
func (c *Client) EachJob(ctx context.Context, f Filter, pageSize int, visit func(Job)) (requests int, err error) {
	type answer struct {
		page *JobPage
		err  error
	}
	fetch := func(f Filter, page int) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			// A fresh page each time: decoding into reused items would keep
			// the fields an item leaves out (runEndTime of a running job)
			// from the item decoded there before.
			p, err := c.ListJobs(ctx, f, page, pageSize)
			ch <- answer{p, err}
		}()
		return ch
	}
	// f's bounds are inclusive. Explorer's docs do not say whether its own
	// are, so ask one millisecond wider and drop what lies outside.
	from, to := f.FromCreateTime, f.ToCreateTime
	if f.FromCreateTime > 0 {
		f.FromCreateTime--
	}
	if f.ToCreateTime > 0 {
		f.ToCreateTime++
	}
	f.OrderByCreateTime = "asc"
	page := 1
	lastCreate, seenAtLast := from, map[int64]bool{}
	if from == 0 {
		lastCreate = math.MinInt64 // no lower bound: negative createTimes count too
	}
	next := fetch(f, page)
	for {
		a := <-next
		requests++
		if a.err != nil {
			return requests, a.err
		}
		p, fresh := a.page, a.page.Items[:0]
		for i, j := range p.Items {
			if i > 0 && j.CreateTime < p.Items[i-1].CreateTime {
				// Paging by key relies on the order; better fail than miss jobs.
				return requests, fmt.Errorf("list jobs: answer is not in ascending createTime order (orderByCreateTime ignored?)")
			}
			if j.CreateTime < lastCreate || (j.CreateTime == lastCreate && seenAtLast[j.ID]) {
				continue // visited on an earlier page, or before from
			}
			if to > 0 && j.CreateTime > to {
				continue
			}
			if j.CreateTime > lastCreate {
				lastCreate = j.CreateTime
				clear(seenAtLast)
			}
			seenAtLast[j.ID] = true
			fresh = append(fresh, j)
		}
		size := p.PageSize
		if size <= 0 {
			size = len(p.Items)
		}
		if len(p.Items) == 0 && (page-1)*size < p.Total {
			return requests, fmt.Errorf("list jobs: page %d is empty, but the answer says %d jobs", page, p.Total)
		}
		done := len(p.Items) == 0 || (page-1)*size+len(p.Items) >= p.Total
		if !done {
			// From one millisecond before the last job seen, for the same
			// reason: the rest of that millisecond is in the next page.
			if lastCreate > f.FromCreateTime+1 {
				f.FromCreateTime, page = lastCreate-1, 1
			} else {
				page++ // a whole page within one millisecond: step through it
			}
			next = fetch(f, page)
		}
		for _, j := range fresh {
			visit(j)
		}
		if done {
			return requests, nil
		}
	}
}

// call makes an authenticated API call, logging in first if needed and once
// more if Explorer says the session is gone.
func (c *Client) call(ctx context.Context, op, method, path string, query url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		token, err := c.session(ctx)
		if err != nil {
			return err
		}
		_, err = c.roundTrip(ctx, op, method, path, query, nil, token, nil, out)
		var apiErr *Error
		if attempt == 0 && errors.As(err, &apiErr) && apiErr.IsAuth() {
			c.forget(token)
			continue
		}
		return err
	}
}

// session returns a token that is valid for a while yet, logging in if needed.
func (c *Client) session(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && (c.renewAt.IsZero() || c.now().Before(c.renewAt)) {
		return c.token, nil
	}
	return c.login(ctx)
}

// forget drops a token Explorer refused, unless another call already replaced it.
func (c *Client) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// Login logs in now (normally done lazily); useful to check credentials.
func (c *Client) Login(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.login(ctx)
	return err
}

// login calls /connect; c.mu is held.
func (c *Client) login(ctx context.Context) (string, error) {
	password, err := c.cfg.Password()
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	encodings := []string{c.encoding}
	if c.encoding == EncodingAuto {
		encodings = []string{EncodingJSON, EncodingColon}
	}
	body, _ := json.Marshal(map[string]any{"address": c.cfg.GraphAddress, "port": c.cfg.GraphPort})
	var lastErr error
	for _, enc := range encodings {
		header := http.Header{"Authorization": {"Bearer " + credential(enc, c.cfg.Username, password)}}
		cookies, err := c.roundTrip(ctx, "login as "+strconv.Quote(c.cfg.Username)+" ("+enc+" encoding)",
			http.MethodPost, ConnectPath, nil, body, "", header, nil)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.IsAuth() {
			lastErr = err // this encoding may be the wrong one: try the next
			continue
		}
		if err != nil {
			return "", err
		}
		for _, ck := range cookies {
			if ck.Name != TokenCookie || ck.Value == "" {
				continue
			}
			c.token, c.encoding, c.renewAt = ck.Value, enc, time.Time{}
			if ck.MaxAge > 0 {
				// Renew at 90% of the lifetime, so no request races the expiry.
				c.renewAt = c.now().Add(time.Duration(ck.MaxAge) * time.Second * 9 / 10)
			} else if !ck.Expires.IsZero() {
				c.renewAt = c.now().Add(ck.Expires.Sub(c.now()) * 9 / 10)
			}
			return c.token, nil
		}
		return "", fmt.Errorf("login: explorer answered success but set no %s cookie", TokenCookie)
	}
	return "", lastErr
}

// credential builds the Bearer value; it is a secret and is never logged.
func credential(encoding, user, password string) string {
	raw := user + ":" + password
	if encoding == EncodingJSON {
		b, _ := json.Marshal([]string{user, password})
		raw = string(b)
	}
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// roundTrip sends one request, decodes the envelope's data into out (if not
// nil) and returns the cookies set.
func (c *Client) roundTrip(ctx context.Context, op, method, path string, query url.Values, body []byte,
	token string, header http.Header, out any) ([]*http.Cookie, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: TokenCookie, Value: token})
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer bodyBuffers.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1)); err != nil {
		return nil, fmt.Errorf("%s: reading answer: %w", op, err)
	}
	if buf.Len() > maxBody {
		return nil, fmt.Errorf("%s: answer larger than %d bytes", op, maxBody)
	}
	if err := decode(op, resp.StatusCode, buf.Bytes(), out); err != nil {
		return nil, err
	}
	return resp.Cookies(), nil
}

// decode checks an answer's status and envelope and decodes its data into
// out (if not nil). Explorer's docs do not say which HTTP status goes with an
// error, so a non-2xx status and a non-zero code are both *Error.
func decode(op string, status int, raw []byte, out any) error {
	if status < 200 || status > 299 {
		e := &Error{Op: op, HTTPStatus: status}
		var env Envelope
		if json.Unmarshal(raw, &env) == nil {
			e.Code, e.Message = env.Code, truncate(env.Message)
		}
		return e
	}
	// Data goes straight into out, without a copy of the page in between.
	env := struct {
		Code    *int     `json:"code"`
		Message string   `json:"message"`
		Data    dataInto `json:"data"`
	}{Data: dataInto{out: out}}
	err := json.Unmarshal(raw, &env)
	if err != nil && env.Code != nil && *env.Code != CodeOK {
		err = nil // an error answer whose data has another shape
	}
	switch {
	case err != nil && !json.Valid(raw):
		return fmt.Errorf("%s: answer is not valid JSON: %w", op, err)
	case err != nil:
		return fmt.Errorf("%s: unexpected data: %w", op, err)
	case env.Code == nil:
		return fmt.Errorf("%s: answer has no code", op)
	case *env.Code != CodeOK:
		return &Error{Op: op, HTTPStatus: status, Code: *env.Code, Message: truncate(env.Message)}
	case out != nil && !env.Data.seen:
		return fmt.Errorf("%s: answer has no data", op)
	}
	return nil
}

// dataInto decodes an envelope's data into out and notes whether there was any.
type dataInto struct {
	out  any
	seen bool
}

func (d *dataInto) UnmarshalJSON(b []byte) error {
	if d.out == nil || string(b) == "null" {
		return nil
	}
	d.seen = true
	return json.Unmarshal(b, d.out)
}

// truncate bounds the error name Explorer sends, which goes into logs.
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
