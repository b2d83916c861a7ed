package explorer

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary answers to the decoder of every call: it must
// never panic, and must fail (not invent jobs) on anything but a good envelope.
func FuzzDecode(f *testing.F) {
	f.Add(200, []byte(`{"code":0,"message":"Success","data":{"items":[{"id":105,"name":"w_1","workflowId":"4216617528","workflowName":"w","status":2,"runBeginTime":1657847358000,"runEndTime":1657847364000,"createTime":1657847355906,"tasks":null}],"total":1,"Page":1,"PageSize":10}}`))
	f.Add(200, []byte(`{"code":40104001,"message":"ErrSession","data":null}`))
	f.Add(500, []byte(`{"code":50004000,"message":"ErrInternalServer"}`))
	f.Add(200, []byte(`{"code":0,"message":"Success","data":{"items":[{"id":1`))
	f.Add(200, []byte(`{"code":0,"data":{"id":1,"tasks":[{"id":"f9","name":"BFS","status":2,"runBeginTime":"2022-07-12T10:33:35+08:00"}]}}`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		var page JobPage
		err := decode("list jobs", status, raw, &page)
		if err == nil && (status < 200 || status > 299) {
			t.Fatalf("HTTP %d accepted", status)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "list jobs: ") {
			t.Fatalf("error does not say what failed: %v", err)
		}
		var detail Job
		_ = decode("get job", status, raw, &detail)
		if err == nil && !bytes.Contains(bytes.ToLower(raw), []byte(`ata"`)) {
			t.Fatalf("an answer without data was accepted: %s", raw)
		}
	})
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, raw string
		status    int
		wantErr   string
	}{
		{"a good page decodes", `{"code":0,"message":"Success","data":{"items":[],"total":0,"Page":1,"PageSize":10}}`, 200, ""},
		{"an answer without data is an error, not an empty page", `{"code":0,"message":"Success"}`, 200, "list jobs: answer has no data"},
		{"null data is an error", `{"code":0,"data":null}`, 200, "list jobs: answer has no data"},
		{"an answer without code is an error", `{"data":{"items":[]}}`, 200, "list jobs: answer has no code"},
		{"an error code wins over data of another shape", `{"code":50004001,"message":"ErrInternalDatabase","data":"oops"}`, 200,
			"list jobs: explorer answered HTTP 200, code 50004001 (ErrInternalDatabase)"},
		{"data of the wrong shape is an error", `{"code":0,"data":{"items":"x"}}`, 200, "list jobs: unexpected data"},
		{"cut JSON is an error", `{"code":0,"data":{"items":[`, 200, "list jobs: answer is not valid JSON"},
		{"a 502 from a proxy is an error without code", `<html>bad gateway</html>`, 502, "list jobs: explorer answered HTTP 502"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p JobPage
			err := decode("list jobs", tc.status, []byte(tc.raw), &p)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
