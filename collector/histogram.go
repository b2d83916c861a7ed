package collector

import (
	"math"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// histogram counts durations per bucket (not cumulatively); the last count
// is the +Inf bucket. bounds (seconds) are shared and never modified. The sum
// is kept in whole milliseconds, as Explorer gives them, so it is exact and
// independent of the order jobs are seen in; it saturates at MaxInt64 ms
// (292 million years) instead of wrapping negative on bogus run times.
type histogram struct {
	bounds []float64
	counts []uint64
	sumMs  int64
	count  uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(ms int64) {
	v := float64(ms) / 1000
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sumMs = addSat(h.sumMs, ms)
	h.count++
}

func (h histogram) clone() histogram {
	h.counts = append([]uint64(nil), h.counts...)
	return h
}

// cumulative returns the buckets as Prometheus exposes them: observations
// at or below each bound, without +Inf.
func (h histogram) cumulative() []uint64 {
	out := make([]uint64, len(h.bounds))
	var acc uint64
	for i := range h.bounds {
		acc += h.counts[i]
		out[i] = acc
	}
	return out
}

func (h histogram) proto() *dto.Histogram {
	buckets := make([]*dto.Bucket, len(h.bounds))
	for i, c := range h.cumulative() {
		buckets[i] = &dto.Bucket{UpperBound: proto.Float64(h.bounds[i]), CumulativeCount: proto.Uint64(c)}
	}
	return &dto.Histogram{SampleCount: proto.Uint64(h.count), SampleSum: proto.Float64(h.sum()), Bucket: buckets}
}

// atLeast returns a histogram no smaller than h or old in any cumulative
// bucket, count or sum. It equals h when h already dominates old (no job was
// deleted), and keeps every exposed series from decreasing when one was.
func (h histogram) atLeast(old histogram) histogram {
	out := newHistogram(h.bounds)
	var accNew, accOld, prev uint64
	for i := range h.counts {
		accNew += h.counts[i]
		accOld += old.counts[i]
		c := max(accNew, accOld)
		out.counts[i] = c - prev
		prev = c
	}
	out.count = prev
	out.sumMs = max(h.sumMs, old.sumMs)
	return out
}

func (h histogram) sum() float64 { return float64(h.sumMs) / 1000 }

// addSat is a + b for b >= 0, saturated at MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
