package collector

import (
	"math"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// histogram counts durations per bucket (not cumulatively); the last count
// is the +Inf bucket. bounds (seconds) are shared and never modified. The sum
// is kept in whole milliseconds, as Explorer gives them, so it is exact and
// independent of the order jobs are seen in; it saturates at MaxInt64 ms
// (292 million years) instead of wrapping negative on bogus run times.
//
// Beside the classic buckets it keeps native (sparse) buckets of schema
// nativeSchema, served in protobuf, and, for the job histograms, an exemplar
// per classic bucket.
type histogram struct {
	bounds []float64
	counts []uint64
	sumMs  int64
	count  uint64

	native   []uint64 // native bucket nativeLo+i; only the range observed
	nativeLo int32
	zero     uint64 // observations of 0 ms: the native zero bucket

	exemplars []exemplar // per classic bucket (+Inf last); nil: no exemplars kept
}

// exemplar is the latest job observed into a bucket.
type exemplar struct {
	ref jobRef // ref.at is when it was observed (ms): its timestamp
	ms  int64  // the duration observed
}

// Native buckets: schema 1, each bucket a factor √2 wider than the one
// below (bucket k holds (2^((k-1)/2), 2^(k/2)] seconds), so 1 ms to 10 days
// take at most 60 buckets and a quantile is off by at most 19%. Durations
// are whole milliseconds: the zero bucket (±2^-11 s) holds those of 0 ms.
const (
	nativeSchema        = 1
	nativeZeroThreshold = 1.0 / 2048
)

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// newJobHistogram is a histogram that keeps exemplars.
func newJobHistogram(bounds []float64) histogram {
	h := newHistogram(bounds)
	h.exemplars = make([]exemplar, len(bounds)+1)
	return h
}

func (h *histogram) observe(ms int64) { h.observeJob(ms, jobRef{}) }

// observeJob observes the duration of the job ref; it becomes the bucket's
// exemplar if it is the latest observed into it.
func (h *histogram) observeJob(ms int64, ref jobRef) {
	v := float64(ms) / 1000
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sumMs = addSat(h.sumMs, ms)
	h.count++
	if h.exemplars != nil && ref.id != 0 && (h.exemplars[i].ref.id == 0 || ref.after(h.exemplars[i].ref)) {
		h.exemplars[i] = exemplar{ref, ms}
	}
	if ms <= 0 {
		h.zero++
		return
	}
	k := nativeKey(v)
	switch {
	case len(h.native) == 0:
		h.native, h.nativeLo = []uint64{0}, k
	case k < h.nativeLo:
		h.native = append(make([]uint64, h.nativeLo-k, int(h.nativeLo-k)+len(h.native)), h.native...)
		h.nativeLo = k
	}
	for int(k-h.nativeLo) >= len(h.native) {
		h.native = append(h.native, 0)
	}
	h.native[k-h.nativeLo]++
}

// nativeKey is the index of the native bucket of v > 0 seconds, computed as
// client_golang does for schema 1: bucket k's upper bound is 2^(k/2).
func nativeKey(v float64) int32 {
	frac, exp := math.Frexp(v) // v = frac × 2^exp, frac in [0.5, 1)
	k := int32(exp-1) * 2
	switch {
	case frac == 0.5:
	case frac <= math.Sqrt2/2:
		k++
	default:
		k += 2
	}
	return k
}

func (h histogram) clone() histogram {
	h.counts = append([]uint64(nil), h.counts...)
	h.native = append([]uint64(nil), h.native...)
	if h.exemplars != nil {
		h.exemplars = append([]exemplar(nil), h.exemplars...)
	}
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

// proto is the histogram as client_model has it: classic buckets (none if
// dropClassic) with their exemplars, and the native buckets.
func (h histogram) proto(dropClassic bool) *dto.Histogram {
	p := &dto.Histogram{SampleCount: proto.Uint64(h.count), SampleSum: proto.Float64(h.sum()),
		Schema: proto.Int32(nativeSchema), ZeroThreshold: proto.Float64(nativeZeroThreshold), ZeroCount: proto.Uint64(h.zero)}
	if !dropClassic {
		p.Bucket = make([]*dto.Bucket, len(h.bounds), len(h.bounds)+1)
		for i, c := range h.cumulative() {
			p.Bucket[i] = &dto.Bucket{UpperBound: proto.Float64(h.bounds[i]), CumulativeCount: proto.Uint64(c), Exemplar: h.exemplar(i)}
		}
		if e := h.exemplar(len(h.bounds)); e != nil { // +Inf is written explicitly only to carry one
			p.Bucket = append(p.Bucket, &dto.Bucket{UpperBound: proto.Float64(math.Inf(1)), CumulativeCount: proto.Uint64(h.count), Exemplar: e})
		}
	}
	for i := range h.exemplars {
		if e := h.exemplar(i); e != nil {
			p.Exemplars = append(p.Exemplars, e) // for native histograms
		}
	}
	if len(h.native) == 0 {
		// A no-op span marks a histogram without observations as native.
		p.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(0)}}
		return p
	}
	p.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(h.nativeLo), Length: proto.Uint32(uint32(len(h.native)))}}
	p.PositiveDelta = make([]int64, len(h.native))
	prev := int64(0)
	for i, c := range h.native {
		p.PositiveDelta[i] = int64(c) - prev
		prev = int64(c)
	}
	return p
}

// exemplar returns bucket i's exemplar as client_model has it, nil if none.
func (h histogram) exemplar(i int) *dto.Exemplar {
	if h.exemplars == nil || h.exemplars[i].ref.id == 0 {
		return nil
	}
	e := h.exemplars[i]
	return &dto.Exemplar{
		Label:     []*dto.LabelPair{{Name: proto.String("job_id"), Value: proto.String(strconv.FormatInt(e.ref.id, 10))}},
		Value:     proto.Float64(float64(e.ms) / 1000),
		Timestamp: timestamppb.New(time.UnixMilli(e.ref.at)),
	}
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
	out.sumMs = max(h.sumMs, old.sumMs)
	// Each native bucket is a counter of its own.
	out.zero = max(h.zero, old.zero)
	nativeTotal := out.zero
	if len(h.native) > 0 || len(old.native) > 0 {
		lo, hi := h.nativeRange()
		if len(h.native) == 0 {
			lo, hi = old.nativeRange()
		} else if len(old.native) > 0 {
			olo, ohi := old.nativeRange()
			lo, hi = min(lo, olo), max(hi, ohi)
		}
		out.nativeLo, out.native = lo, make([]uint64, hi-lo)
		for k := lo; k < hi; k++ {
			out.native[k-lo] = max(h.nativeAt(k), old.nativeAt(k))
			nativeTotal += out.native[k-lo]
		}
	}
	// The count is at least the classic and the native buckets' totals.
	out.count = max(prev, nativeTotal)
	out.counts[len(out.counts)-1] += out.count - prev
	out.exemplars = h.exemplars // like a gauge: the recomputed ones
	return out
}

// nativeRange is the range [lo, hi) of native bucket keys h holds.
func (h histogram) nativeRange() (lo, hi int32) { return h.nativeLo, h.nativeLo + int32(len(h.native)) }

func (h histogram) nativeAt(k int32) uint64 {
	if i := int(k - h.nativeLo); i >= 0 && i < len(h.native) {
		return h.native[i]
	}
	return 0
}

func (h histogram) sum() float64 { return float64(h.sumMs) / 1000 }

// addSat is a + b for b >= 0, saturated at MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
