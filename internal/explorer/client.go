package explorer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login encodings of the Bearer credential: the two language versions of the
// docs disagree, so a client must support both.
const (
	EncodingAuto  = "auto"  // the encoding that worked last (JSON at first), then the other
	EncodingJSON  = "json"  // base64 of ["user","pass"] (Chinese docs)
	EncodingColon = "colon" // base64 of user:pass (English docs)
)

// maxTokenLifetime bounds the lifetime a session cookie claims (Max-Age
// 1e10, Expires in 2065), so the renewal time cannot overflow.
const maxTokenLifetime = 30 * 24 * time.Hour

// Endpoints, as Config.OnRequest names them.
const (
	EndpointConnect = "connect" // POST /connect
	EndpointJobs    = "jobs"    // GET /jobs, one listing page
	EndpointJob     = "job"     // GET /jobs/<id>
)

// Results of a request other than an Explorer error name, as
// Config.OnRequest names them.
const (
	ResultSuccess       = "success"
	ResultNetwork       = "network"        // no answer: refused, reset, cancelled, ...
	ResultTimeout       = "timeout"        // explorer.timeout or the caller's deadline ran out
	ResultInvalidAnswer = "invalid_answer" // see InvalidAnswerError
)

// Config is what the client needs to reach and log in to Explorer.
type Config struct {
	URL          string                 // base URL, e.g. http://127.0.0.1:7002
	Username     string                 // NebulaGraph account
	Password     func() (string, error) // read at each login, so a rotated password_file is picked up
	GraphAddress string                 // graphd address Explorer connects to
	GraphPort    int
	Encoding     string       // EncodingAuto (default), EncodingJSON or EncodingColon
	HTTPClient   *http.Client // carries TLS and the per-request timeout; the client never follows redirects
	UserAgent    string

	// OnRequest, if not nil, is called once per HTTP request when it ends,
	// with its endpoint (EndpointConnect, EndpointJobs, EndpointJob), its
	// result and how long it took. The result is ResultSuccess, the name of
	// Explorer's error code (ErrSession, ...; ErrorName bounds them),
	// "http_<status>" for a failed status without a code, ResultNetwork,
	// ResultTimeout or ResultInvalidAnswer.
	OnRequest func(endpoint, result string, d time.Duration)
	// MaxRequestsPerSecond bounds the rate of requests, prefetches and
	// logins included, with a token bucket of one second's worth (0: no
	// bound). Waiting respects the request's context.
	MaxRequestsPerSecond float64
	// Now is the clock of the session token's renewal (nil: time.Now).
	Now func() time.Time
}

// Client talks to one Explorer. It logs in lazily, renews the session token
// before its Max-Age runs out and logs in again (retrying the request once)
// when Explorer says the session is gone. Safe for concurrent use.
type Client struct {
	cfg     Config
	base    *url.URL
	http    *http.Client
	limiter *rate.Limiter // nil: no bound
	pages   *pagePool     // EachJob's page buffers

	mu       sync.Mutex
	token    string
	renewAt  time.Time // zero: no known expiry
	encoding string    // the encoding that last worked (or the configured one)
}

// NewClient checks the config and returns a client; it does not contact Explorer.
func NewClient(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	switch {
	case err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "":
		return nil, fmt.Errorf("explorer URL %q: want http(s)://host[:port]", redactURL(cfg.URL))
	case base.User != nil:
		return nil, fmt.Errorf("explorer URL %q: credentials go in the username and password settings, not the URL", redactURL(cfg.URL))
	}
	switch cfg.Encoding {
	case "":
		cfg.Encoding = EncodingAuto
	case EncodingAuto, EncodingJSON, EncodingColon:
	default:
		return nil, fmt.Errorf("unknown auth encoding %q: want auto, json or colon", cfg.Encoding)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	}
	// A redirect would carry the credentials or the token elsewhere, maybe
	// in clear text: never follow one; its 3xx is the answer.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Jar = nil
	if cfg.Password == nil {
		cfg.Password = func() (string, error) { return "", nil }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, base: base, http: hc, encoding: cfg.Encoding, pages: newPagePool()}
	if cfg.MaxRequestsPerSecond > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.MaxRequestsPerSecond), max(1, int(cfg.MaxRequestsPerSecond)))
	}
	return c, nil
}

// redactURL hides the userinfo of a URL (user:password@), which must never
// reach a log, even from a URL that does not parse.
func redactURL(raw string) string {
	rest := raw
	prefix := ""
	if scheme, after, ok := strings.Cut(raw, "://"); ok {
		prefix, rest = scheme+"://", after
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return prefix + "xxxxx@" + rest[at+1:]
	}
	return raw
}

// ListJobs fetches one page of the job listing. Its items are checked
// against f: a job outside f's status or createTime bounds, a page larger
// than pageSize or out of the order f asks is an *InvalidAnswerError.
func (c *Client) ListJobs(ctx context.Context, f Filter, page, pageSize int) (*JobPage, error) {
	p, _, err := c.listJobs(ctx, f, page, pageSize, nil)
	return p, err
}

// listJobs is ListJobs decoding the page into a buffer of pool (nil: into
// new memory), which it returns for the caller to put back when done with
// the page; on an error it has put it back itself.
func (c *Client) listJobs(ctx context.Context, f Filter, page, pageSize int, pool *pagePool) (*JobPage, *pageBuffer, error) {
	var (
		p   JobPage
		buf *pageBuffer
	)
	check := listCheck(f)
	data := func(dec *jsontext.Decoder) (err error) {
		if buf == nil && pool != nil {
			if buf, err = pool.get(ctx); err != nil {
				return err
			}
		}
		return readPage(dec, &p, pageSize, buf, check)
	}
	if err := c.call(ctx, EndpointJobs, "list jobs", JobsPath, f.Query(page, pageSize), listingLimit(pageSize), data); err != nil {
		if buf != nil {
			pool.put(buf)
		}
		return nil, nil, err
	}
	return &p, buf, nil
}

// listCheck returns a check of each listed job, in order, against f.
func listCheck(f Filter) func(j *Job) error {
	var prev *Job
	return func(j *Job) error {
		switch {
		case f.Status != nil && j.Status != *f.Status:
			return invalid("item_outside_filter", "job %d has status %d, the listing asked for %d", j.ID, j.Status, *f.Status)
		case f.FromCreateTime != 0 && j.CreateTime < f.FromCreateTime, f.ToCreateTime != 0 && j.CreateTime > f.ToCreateTime:
			return invalid("item_outside_filter", "job %d has createTime %d, the listing asked for [%d, %d] (0: no bound)",
				j.ID, j.CreateTime, f.FromCreateTime, f.ToCreateTime)
		case prev != nil && f.OrderByCreateTime == "asc" && j.CreateTime < prev.CreateTime,
			prev != nil && f.OrderByCreateTime == "desc" && j.CreateTime > prev.CreateTime:
			return invalid("order", "jobs %d and %d are not in %s createTime order (orderByCreateTime ignored?)",
				prev.ID, j.ID, f.OrderByCreateTime)
		}
		prev = j
		return nil
	}
}

// Job fetches one job with its tasks; the detail of another job is an
// *InvalidAnswerError.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	var j Job
	data := func(dec *jsontext.Decoder) error {
		if err := readJob(dec, &j, interned{}, new([]Task)); err != nil {
			return err
		}
		if j.ID != id {
			return invalid("wrong_job", "asked for job %d, got job %d", id, j.ID)
		}
		return nil
	}
	idText := strconv.FormatInt(id, 10)
	if err := c.call(ctx, EndpointJob, "get job "+idText, JobsPath+"/"+idText, nil, maxBody, data); err != nil {
		return nil, err
	}
	return &j, nil
}

// call makes an authenticated GET, logging in first if needed and once
// more if Explorer says the session is gone.
func (c *Client) call(ctx context.Context, endpoint, op, path string, query url.Values, limit int64, data dataFunc) error {
	for attempt := 0; ; attempt++ {
		token, err := c.session(ctx)
		if err != nil {
			return err
		}
		_, err = c.roundTrip(ctx, endpoint, op, http.MethodGet, path, query, nil, token, nil, limit, data)
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
	if c.token != "" && (c.renewAt.IsZero() || c.cfg.Now().Before(c.renewAt)) {
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

// login calls /connect; c.mu is held. With EncodingAuto it tries the
// encoding that worked last, then the other one.
func (c *Client) login(ctx context.Context) (string, error) {
	password, err := c.cfg.Password()
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	encodings := []string{c.encoding}
	switch {
	case c.cfg.Encoding != EncodingAuto:
	case c.encoding == EncodingColon:
		encodings = []string{EncodingColon, EncodingJSON}
	default:
		encodings = []string{EncodingJSON, EncodingColon}
	}
	body, _ := json.Marshal(map[string]any{"address": c.cfg.GraphAddress, "port": c.cfg.GraphPort})
	var lastErr error
	for _, enc := range encodings {
		header := http.Header{"Authorization": {"Bearer " + credential(enc, c.cfg.Username, password)}}
		cookies, err := c.roundTrip(ctx, EndpointConnect, "login ("+enc+" encoding)",
			http.MethodPost, ConnectPath, nil, body, "", header, maxBody, nil)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.IsRefusedLogin() {
			lastErr = err // this encoding may be the wrong one: try the next
			continue
		}
		if err != nil {
			return "", err
		}
		for _, ck := range cookies {
			if ck.Name == TokenCookie && ck.Value != "" {
				c.token, c.encoding, c.renewAt = ck.Value, enc, c.renewal(ck)
				return c.token, nil
			}
		}
		return "", &InvalidAnswerError{Op: "login", Reason: "no_data", Detail: "success without a " + TokenCookie + " cookie"}
	}
	what := "the " + encodings[0] + " encoding"
	if len(encodings) == 2 {
		what = "both encodings (json and colon)"
	}
	return "", fmt.Errorf("login as %q: %w in %s: %w", c.cfg.Username, ErrLoginRefused, what, lastErr)
}

// renewal is when to renew a token: at 90% of the lifetime its cookie
// claims, clamped to maxTokenLifetime, so no request races the expiry;
// zero if the cookie says nothing.
func (c *Client) renewal(ck *http.Cookie) time.Time {
	now := c.cfg.Now()
	var life time.Duration
	switch {
	case ck.MaxAge > 0:
		life = time.Duration(min(int64(ck.MaxAge), int64(maxTokenLifetime/time.Second))) * time.Second
	case ck.MaxAge < 0: // Max-Age=0: expired already
	case !ck.Expires.IsZero():
		life = min(ck.Expires.Sub(now), maxTokenLifetime) // Sub saturates
	default:
		return time.Time{}
	}
	return now.Add(max(life, 0) / 10 * 9)
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

// roundTrip sends one request, decodes its answer (with data, if not nil)
// and returns the cookies set. It waits for the rate limit first and
// reports the request to Config.OnRequest.
func (c *Client) roundTrip(ctx context.Context, endpoint, op, method, path string, query url.Values, body []byte,
	token string, header http.Header, limit int64, data dataFunc) ([]*http.Cookie, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("%s: waiting for explorer.max_requests_per_second: %w", op, err)
		}
	}
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
	start := time.Now()
	var cookies []*http.Cookie
	// The transport asks for gzip and decompresses it itself; decode caps
	// what it reads of the decompressed body.
	resp, err := c.http.Do(req)
	if err == nil {
		err = decode(op, resp.StatusCode, resp.Body, limit, data)
		cookies = resp.Cookies()
		resp.Body.Close()
	}
	if err != nil && !isAnswer(err) {
		err = c.transportError(ctx, op, err)
	}
	if c.cfg.OnRequest != nil {
		c.cfg.OnRequest(endpoint, resultOf(err), time.Since(start))
	}
	return cookies, err
}

// isAnswer reports whether err is about what Explorer answered.
func isAnswer(err error) bool {
	var apiErr *Error
	var inv *InvalidAnswerError
	return errors.As(err, &apiErr) || errors.As(err, &inv)
}

// transportError says what became of a request that got no (complete)
// answer, naming the per-request limit when that is what ran out.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	var netErr net.Error
	if ctx.Err() == nil && errors.As(err, &netErr) && netErr.Timeout() {
		return &RequestTimeoutError{Op: op, Limit: c.http.Timeout, Err: err}
	}
	if strings.HasPrefix(err.Error(), op+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// resultOf is the result label of a request that ended with err.
func resultOf(err error) string {
	var apiErr *Error
	var netErr net.Error
	switch {
	case err == nil:
		return ResultSuccess
	case isInvalid(err):
		return ResultInvalidAnswer
	case errors.As(err, &apiErr) && apiErr.Code != 0:
		return ErrorName(apiErr.Code)
	case errors.As(err, &apiErr):
		return "http_" + strconv.Itoa(apiErr.HTTPStatus)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ResultTimeout
	}
	return ResultNetwork
}

func isInvalid(err error) bool {
	var inv *InvalidAnswerError
	return errors.As(err, &inv)
}

// truncate bounds the error name Explorer sends, which goes into logs.
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
