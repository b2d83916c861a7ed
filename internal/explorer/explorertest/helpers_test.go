package explorertest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

const connectBody = `{"address": "127.0.0.1", "port": 9669}`

func bearerJSON(user, password string) string {
	b, _ := json.Marshal([]string{user, password})
	return "Bearer " + base64.StdEncoding.EncodeToString(b)
}

func bearerColon(user, password string) string {
	return "Bearer " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// envelope is the JSON wrapper of every answer.
type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// reply is one HTTP answer of the fake.
type reply struct {
	status int
	header http.Header
	body   []byte
	env    envelope // zero if the body is not JSON
}

// send makes one request over real HTTP; token "" sends no cookie.
func send(t *testing.T, srv *httptest.Server, method, path, auth, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: explorer.TokenCookie, Value: token})
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.env)
	return r
}

// login logs in as root/nebula and returns the token.
func login(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	r := send(t, srv, http.MethodPost, explorer.ConnectPath, bearerJSON("root", "nebula"), "", connectBody)
	if r.status != http.StatusOK || r.env.Code != 0 {
		t.Fatalf("login: HTTP %d %s", r.status, r.body)
	}
	return tokenOf(t, r)
}

func tokenOf(t *testing.T, r reply) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == explorer.TokenCookie {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", explorer.TokenCookie, r.header)
	return ""
}

// listPath is the path of a listing request.
func listPath(base string, f explorer.Filter, page, pageSize int) string {
	return base + "?" + f.Query(page, pageSize).Encode()
}

// listPage fetches and decodes one listing page, failing the test on any error.
func listPage(t *testing.T, srv *httptest.Server, token string, path string) explorer.JobPage {
	t.Helper()
	r := send(t, srv, http.MethodGet, path, "", token, "")
	if r.status != http.StatusOK || r.env.Code != 0 {
		t.Fatalf("GET %s: HTTP %d %s", path, r.status, r.body)
	}
	var p explorer.JobPage
	if err := json.Unmarshal(r.env.Data, &p); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, r.env.Data)
	}
	return p
}

func ids(jobs []explorer.Job) []int64 {
	out := make([]int64, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func intp(v int) *int { return &v }

func rawQuery(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v.Encode()
}
