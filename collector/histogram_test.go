package collector

import (
	"math"
	"reflect"
	"testing"
)

func TestHistogram(t *testing.T) {
	bounds := []float64{1, 10}
	t.Run("observations land in the first bucket whose bound is not below them", func(t *testing.T) {
		h := newHistogram(bounds)
		for _, v := range []int64{0, 1000, 1500, 10_000, 11_000} {
			h.observe(v)
		}
		if want := []uint64{2, 2, 1}; !reflect.DeepEqual(h.counts, want) {
			t.Errorf("counts = %v, want %v", h.counts, want)
		}
		if want := []uint64{2, 4}; !reflect.DeepEqual(h.cumulative(), want) {
			t.Errorf("cumulative = %v, want %v", h.cumulative(), want)
		}
		if h.count != 5 || h.sum() != 23.5 {
			t.Errorf("count, sum = %d, %g; want 5, 23.5", h.count, h.sum())
		}
	})
	t.Run("atLeast equals the new histogram when it dominates the old one", func(t *testing.T) {
		old, h := newHistogram(bounds), newHistogram(bounds)
		old.observe(5000)
		h.observe(5000)
		h.observe(50_000)
		if got := h.atLeast(old); !reflect.DeepEqual(got, h) {
			t.Errorf("atLeast = %+v, want %+v", got, h)
		}
	})
	t.Run("atLeast never lets a cumulative bucket, the count or the sum drop", func(t *testing.T) {
		old, h := newHistogram(bounds), newHistogram(bounds)
		old.observe(500) // deleted since
		old.observe(500)
		h.observe(50_000)
		got := h.atLeast(old)
		if want := []uint64{2, 2}; !reflect.DeepEqual(got.cumulative(), want) {
			t.Errorf("cumulative = %v, want %v", got.cumulative(), want)
		}
		// Each native bucket is a counter: 2 in 0.5 s's, 1 in 50 s's; the
		// count covers them all, so no native bucket or count drops either.
		if want := []uint64{2, 1}; !reflect.DeepEqual(got.native[:1], want[:1]) || got.nativeAt(nativeKey(50)) != 1 {
			t.Errorf("native buckets = %v from %d, want 2 at %d and 1 at %d", got.native, got.nativeLo, nativeKey(0.5), nativeKey(50))
		}
		if got.count != 3 || got.sum() != 50 {
			t.Errorf("count, sum = %d, %g; want 3, 50", got.count, got.sum())
		}
	})
	t.Run("native buckets: schema 1, upper bounds 2^(k/2) inclusive, 0 ms in the zero bucket", func(t *testing.T) {
		for _, c := range []struct {
			seconds float64
			key     int32
		}{{1, 0}, {1.2, 1}, {1.414, 1}, {1.415, 2}, {2, 2}, {2.001, 3}, {0.5, -2}, {0.001, -19}, {86400, 33}} {
			if k := nativeKey(c.seconds); k != c.key {
				t.Errorf("nativeKey(%g) = %d, want %d", c.seconds, k, c.key)
			}
			if upper, lower := math.Pow(2, float64(c.key)/2), math.Pow(2, float64(c.key-1)/2); c.seconds > upper || c.seconds <= lower {
				t.Errorf("%g s is not in bucket %d (%g, %g]", c.seconds, c.key, lower, upper)
			}
		}
		h := newHistogram(bounds)
		for _, ms := range []int64{0, 0, 1000, 2000, 1500, 500} {
			h.observe(ms)
		}
		p := h.proto(false)
		if p.GetZeroCount() != 2 || p.GetSchema() != 1 || p.PositiveSpan[0].GetOffset() != -2 || p.PositiveSpan[0].GetLength() != 5 ||
			!reflect.DeepEqual(p.PositiveDelta, []int64{1, -1, 1, -1, 2}) {
			t.Errorf("native histogram %v", p)
		}
	})
	t.Run("clone does not share counts", func(t *testing.T) {
		h := newHistogram(bounds)
		c := h.clone()
		c.observe(1000)
		if h.count != 0 || h.counts[0] != 0 {
			t.Errorf("original changed: %+v", h)
		}
	})
}
