package collector

import (
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
		if got.count != 2 || got.sum() != 50 {
			t.Errorf("count, sum = %d, %g; want 2, 50", got.count, got.sum())
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
