package explorer

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decodePage decodes raw as the answer to a listing request with filter f
// and page size size, as ListJobs does.
func decodePage(status int, raw []byte, f Filter, size int) (*JobPage, error) {
	var p JobPage
	check := listCheck(f)
	err := decode("list jobs", status, bytes.NewReader(raw), listingLimit(size), func(dec *jsontext.Decoder) error {
		return readPage(dec, &p, size, nil, check)
	})
	return &p, err
}

// FuzzDecode feeds arbitrary answers to the decoder of a listing: it must
// never panic, must fail (not invent jobs) on anything but a good envelope,
// and must never accept a job the request did not ask for. What it accepts,
// encoding/json reads the same way.
func FuzzDecode(f *testing.F) {
	f.Add(200, []byte(`{"code":0,"message":"Success","data":{"items":[{"id":105,"name":"w_1","workflowId":"4216617528","workflowName":"w","status":2,"runBeginTime":1657847358000,"runEndTime":1657847364000,"createTime":1657847355906,"tasks":null}],"total":1,"Page":1,"PageSize":10}}`))
	f.Add(200, []byte(`{"code":40104001,"message":"ErrSession","data":null}`))
	f.Add(500, []byte(`{"code":50004000,"message":"ErrInternalServer"}`))
	f.Add(200, []byte(`{"code":0,"message":"Success","data":{"items":[{"id":1`))
	f.Add(200, []byte(`{"code":0,"data":{"items":[{"id":1,"status":2,"createTime":1657847355000,"tasks":[{"id":"f9","name":"BFS","status":2,"runBeginTime":"2022-07-12T10:33:35+08:00"}]}]}}`))
	f.Add(200, []byte(`{"code":0,"data":{"items":[{"id":1,"status":2,"Status":3,"createTime":1657847355000}]}}`))
	f.Add(200, []byte(`{"code":0,"data":{"items":[{"id":1,"status":3,"createTime":1657847355000}]}}`))
	f.Add(200, []byte(`{"code":0,"data":{"items":[null]}}`))
	f.Add(200, []byte(`{"code":0,"data":{"items":[{"id":2,"status":2,"createTime":1657847356000},{"id":1,"status":2,"createTime":1657847355000}]}}`))
	filter := Filter{Status: &[]int{StatusSuccess}[0], FromCreateTime: 1657847355000, ToCreateTime: 1657847365000, OrderByCreateTime: "asc"}
	const size = 3
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		p, err := decodePage(status, raw, filter, size)
		if err == nil && (status < 200 || status > 299) {
			t.Fatalf("HTTP %d accepted", status)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "list jobs: ") {
			t.Fatalf("error does not say what failed: %v", err)
		}
		if err != nil {
			return
		}
		if !bytes.Contains(bytes.ToLower(raw), []byte(`ata"`)) {
			t.Fatalf("an answer without data was accepted: %s", raw)
		}
		if len(p.Items) > size {
			t.Fatalf("%d items accepted, %d asked for", len(p.Items), size)
		}
		for i, j := range p.Items {
			if j.Status != *filter.Status || j.CreateTime < filter.FromCreateTime || j.CreateTime > filter.ToCreateTime ||
				(i > 0 && j.CreateTime < p.Items[i-1].CreateTime) {
				t.Fatalf("accepted job %+v outside the request", j)
			}
		}
		var env struct {
			Data JobPage `json:"data"`
		}
		if json.Unmarshal(raw, &env) == nil && len(env.Data.Items) == len(p.Items) {
			if !reflect.DeepEqual(env.Data.Items, p.Items) {
				t.Fatalf("encoding/json reads\n%+v\nthe decoder\n%+v", env.Data.Items, p.Items)
			}
		}
	})
}

func TestDecode(t *testing.T) {
	two := StatusSuccess
	asc := Filter{OrderByCreateTime: "asc"}
	cases := []struct {
		name, raw string
		status    int
		filter    Filter
		wantErr   string
	}{
		{"a good page decodes", `{"code":0,"message":"Success","data":{"items":[],"total":0,"Page":1,"PageSize":10}}`, 200, asc, ""},
		{"lower-case page and pageSize are fine", `{"code":0,"data":{"items":[],"total":0,"page":1,"pageSize":10}}`, 200, asc, ""},
		{"tasks [] are none, not null", `{"code":0,"data":{"items":[{"id":1,"tasks":[]}],"total":1}}`, 200, asc, ""},
		{"an unknown member is skipped", `{"code":0,"data":{"items":[{"id":1,"extra":{"a":[1,2]}}],"total":1}}`, 200, asc, ""},
		{"an answer without data is an error, not an empty page", `{"code":0,"message":"Success"}`, 200, asc,
			"list jobs: invalid answer (no_data): answer has no data"},
		{"null data is an error", `{"code":0,"data":null}`, 200, asc, "list jobs: invalid answer (no_data)"},
		{"an answer without code is an error", `{"data":{"items":[]}}`, 200, asc, "list jobs: invalid answer (no_code)"},
		{"an error code wins over data of another shape", `{"data":"oops","code":50004001,"message":"ErrInternalDatabase"}`, 200, asc,
			"list jobs: explorer answered HTTP 200, code 50004001 (ErrInternalDatabase)"},
		{"data of the wrong shape is an error", `{"code":0,"data":{"items":"x"}}`, 200, asc, "list jobs: invalid answer (bad_data)"},
		{"a page without items is an error", `{"code":0,"data":{"total":3}}`, 200, asc, "list jobs: invalid answer (bad_data)"},
		{"a fraction where an integer belongs is an error", `{"code":0,"data":{"items":[{"id":1.5}]}}`, 200, asc, "list jobs: invalid answer (bad_data)"},
		{"cut JSON is an error", `{"code":0,"data":{"items":[`, 200, asc, "list jobs: invalid answer (not_json)"},
		{"trailing data is an error", `{"code":0,"data":{"items":[]}} {}`, 200, asc, "list jobs: invalid answer (not_json)"},
		{"a 502 from a proxy is an error without code", `<html>bad gateway</html>`, 502, asc, "list jobs: explorer answered HTTP 502"},
		{"a redirect is an error that says it is not followed", ``, 307, asc, "list jobs: explorer answered HTTP 307, a redirect, which is never followed"},
		{"a null item is an error, not a preparing job", `{"code":0,"data":{"items":[null]}}`, 200, asc, "list jobs: invalid answer (null_item)"},
		{"a null task is an error", `{"code":0,"data":{"items":[{"id":1,"tasks":[null]}]}}`, 200, asc, "list jobs: invalid answer (null_item)"},
		{"a key named twice in two cases is an error", `{"code":0,"data":{"items":[{"id":1,"status":2,"Status":3}]}}`, 200, asc,
			`list jobs: invalid answer (duplicate_key): member "status" named twice`},
		{"a key named twice is an error", `{"code":0,"data":{"items":[{"id":1,"id":2}]}}`, 200, asc, "list jobs: invalid answer (duplicate_key)"},
		{"a task key named twice is an error", `{"code":0,"data":{"items":[{"id":1,"tasks":[{"name":"a","NAME":"b"}]}]}}`, 200, asc,
			"list jobs: invalid answer (duplicate_key)"},
		{"an envelope key named twice is an error", `{"code":0,"Code":1,"data":{"items":[]}}`, 200, asc, "list jobs: invalid answer (duplicate_key)"},
		{"an item of another status is an error", `{"code":0,"data":{"items":[{"id":1,"status":3}]}}`, 200, Filter{Status: &two},
			"list jobs: invalid answer (item_outside_filter): job 1 has status 3, the listing asked for 2"},
		{"an item before the window is an error", `{"code":0,"data":{"items":[{"id":1,"createTime":99}]}}`, 200, Filter{FromCreateTime: 100},
			"list jobs: invalid answer (item_outside_filter)"},
		{"an item after the window is an error", `{"code":0,"data":{"items":[{"id":1,"createTime":201}]}}`, 200, Filter{ToCreateTime: 200},
			"list jobs: invalid answer (item_outside_filter)"},
		{"items out of order are an error", `{"code":0,"data":{"items":[{"id":2,"createTime":20},{"id":1,"createTime":10}]}}`, 200, asc,
			"list jobs: invalid answer (order)"},
		{"more items than asked for are an error", `{"code":0,"data":{"items":[{"id":1},{"id":2},{"id":3}]}}`, 200, asc,
			"list jobs: invalid answer (page_size): more than the 2 items asked for"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePage(tc.status, []byte(tc.raw), tc.filter, 2)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			var inv *InvalidAnswerError
			if strings.Contains(tc.wantErr, "invalid answer") && (!errors.As(err, &inv) || resultOf(err) != ResultInvalidAnswer) {
				t.Errorf("err = %#v, want an *InvalidAnswerError", err)
			}
		})
	}
	t.Run("a value of more than 1 MiB is too large, escaped quotes or not; one of less is fine", func(t *testing.T) {
		for _, tc := range []struct {
			value string
			ok    bool
		}{
			{strings.Repeat("x", 1<<20-100), true},
			{strings.Repeat(`\"`, 1<<19-100), true},
			{strings.Repeat("x", 1<<20+100), false},
			{strings.Repeat(`\"`, 1<<19+100), false},
		} {
			raw := `{"code":0,"data":{"items":[{"id":1,"name":"` + tc.value + `"}],"total":1}}`
			_, err := decodePage(200, []byte(raw), asc, 10)
			var inv *InvalidAnswerError
			if tc.ok && err != nil || !tc.ok && (!errors.As(err, &inv) || inv.Reason != "too_large") {
				t.Errorf("a value of %d bytes: err = %v", len(tc.value), err)
			}
		}
	})
	t.Run("a page of names in any Unicode, escapes and invalid UTF-8 decodes as encoding/json does", func(t *testing.T) {
		raw := `{"code":0,"data":{"items":[{"id":1,"name":"社区\u53d1\u73b0 \"q\" \ud83d\ude00","workflowName":"bad ` + "\xff" + ` end","\u0073tatus":2,
			"tasks":[{"id":"x","name":"BFS","status":2,"runBeginTime":"2022-07-12T10:33:35+08:00","runEndTime":null}]}]}}`
		p, err := decodePage(200, []byte(raw), asc, 10)
		var want struct{ Data JobPage }
		if jerr := json.Unmarshal([]byte(raw), &want); err != nil || jerr != nil || !reflect.DeepEqual(p.Items, want.Data.Items) {
			t.Errorf("got %+v, %v\nwant %+v, %v", p.Items, err, want.Data.Items, jerr)
		}
	})
}

// BenchmarkDecodePage decodes a page of 500 jobs, against encoding/json.
func BenchmarkDecodePage(b *testing.B) {
	var page JobPage
	for i := range 500 {
		page.Items = append(page.Items, Job{ID: int64(i + 1), Name: "pagerank_daily_20220715090915", WorkflowID: "4216617528",
			WorkflowName: "pagerank_daily", Status: 2, RunBeginTime: 1657847358000, RunEndTime: 1657847364000, CreateTime: 1657847355906 + int64(i)})
	}
	page.Total, page.Page, page.PageSize = 500, 1, 500
	raw, _ := json.Marshal(map[string]any{"code": 0, "message": "Success", "data": page})
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodePage(200, raw, Filter{OrderByCreateTime: "asc"}, 500); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var env struct{ Data JobPage }
			if err := json.Unmarshal(raw, &env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
