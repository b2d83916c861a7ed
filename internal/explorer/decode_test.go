package explorer

import (
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
		var detail JobDetail
		_ = decode("get job", status, raw, &detail)
	})
}
