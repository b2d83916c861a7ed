package collector

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// TestTextEqualsExpfmt holds the fast text writer to the reference: expfmt's
// text encoding of the rendered families, byte for byte, over random states
// with awkward workflow names and every kind of status.
func TestTextEqualsExpfmt(t *testing.T) {
	names := []string{"bfs", `pr "daily"`, "a\\b", "new\nline", "社区发现", "", "z"}
	for seed := int64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		s := newState([]float64{0.5, 1, 10, 3600}, []float64{1, 60})
		for id := int64(1); id <= int64(rng.Intn(60)); id++ {
			w := rng.Intn(len(names))
			begin, end := int64(0), int64(0)
			if rng.Intn(4) > 0 {
				begin = id*1000 + int64(rng.Intn(100_000))
			}
			if rng.Intn(3) > 0 {
				end = begin + int64(rng.Intn(10_000_000)) - 1000
			}
			s.observe(explorer.Job{ID: id, WorkflowID: fmt.Sprint(w * 7), WorkflowName: names[w], Status: rng.Intn(8) - 1,
				CreateTime: id * 1000, RunBeginTime: begin, RunEndTime: end})
		}
		var want bytes.Buffer
		families, _ := render(context.Background(), s)
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&want, f); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := appendText(context.Background(), nil, s); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("seed %d: text differs from expfmt's:\n%s\nwant:\n%s", seed, got, want.Bytes())
		}
	}
}
