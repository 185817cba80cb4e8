package main

import (
	"slices"
	"time"
)

// Summary describes a set of latencies.
type Summary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted, which must
// be sorted ascending; 0 when sorted is empty. Nearest rank: the smallest value such
// that at least p % of the values are at most it, so p99 of 100 values is the 99th.
func percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	// ceil(p/100 × n) computed in integers of basis points, so 99 % of 100 is
	// exactly 99 and not 99.00000000000001.
	bp := int64(p*100 + 0.5) // basis points
	rank := int((bp*int64(n) + 9999) / 10000)
	rank = max(rank, 1)
	return sorted[min(rank, n)-1]
}

// summarize sorts ns (nanoseconds) in place and describes it in milliseconds.
func summarize(ns []int64) Summary {
	if len(ns) == 0 {
		return Summary{}
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Summary{
		N:    len(ns),
		P50:  ms(percentile(ns, 50)),
		P90:  ms(percentile(ns, 90)),
		P99:  ms(percentile(ns, 99)),
		P999: ms(percentile(ns, 99.9)),
		Max:  ms(ns[len(ns)-1]),
		Mean: sum / float64(len(ns)) / 1e6,
	}
}

// ms converts nanoseconds to milliseconds, rounded to the microsecond.
func ms(ns int64) float64 {
	return float64(time.Duration(ns).Round(time.Microsecond)) / 1e6
}
