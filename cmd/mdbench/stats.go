package main

import (
	"math/bits"
	"slices"
	"time"
)

// hist is a log-linear latency histogram (about 6 % resolution) in
// nanoseconds. It is not safe for concurrent use: each goroutine keeps its
// own and they are merged after the phase.
type hist struct {
	counts [1024]uint64
	n      uint64
}

func histIndex(v uint64) int {
	shift := max(bits.Len64(v)-5, 0)
	if shift == 0 {
		return int(v)
	}
	return 32 + (shift-1)*16 + int(v>>shift) - 16
}

func histValue(i int) uint64 {
	if i < 32 {
		return uint64(i)
	}
	shift := (i-32)/16 + 1
	mant := uint64((i-32)%16 + 16)
	// Middle of the bucket.
	return mant<<shift + (1<<shift)/2
}

func (h *hist) add(d time.Duration) {
	h.counts[histIndex(uint64(max(d, 0)))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1); 0 without samples.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q * float64(h.n))
	if want == 0 {
		want = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= want {
			return time.Duration(histValue(i))
		}
	}
	return 0
}

// series is the repetitions of one figure.
type series []float64

func (s series) median() float64 {
	if len(s) == 0 {
		return 0
	}
	v := slices.Clone(s)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (s series) min() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

func (s series) max() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}
