package main

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"
)

// promHist is a Prometheus histogram summed over every label set (and process).
type promHist struct {
	buckets map[float64]float64 // upper bound → cumulative count
	sum     float64
	count   float64
}

// addPromHist adds histogram name's series from a /metrics text to h.
func (h *promHist) add(text, name string) {
	if h.buckets == nil {
		h.buckets = map[float64]float64{}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		switch {
		case strings.HasPrefix(series, name+"_bucket"):
			i := strings.Index(series, `le="`)
			if i < 0 {
				continue
			}
			rest := series[i+4:]
			le, err := strconv.ParseFloat(rest[:strings.IndexByte(rest, '"')], 64)
			if err != nil {
				continue
			}
			h.buckets[le] += v
		case strings.HasPrefix(series, name+"_sum"):
			h.sum += v
		case strings.HasPrefix(series, name+"_count"):
			h.count += v
		}
	}
}

// quantile is the upper bound of the bucket holding quantile q (0..1), in seconds;
// +Inf when it is beyond the last finite bucket, NaN without observations.
func (h *promHist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	var les []float64
	for le := range h.buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	for _, le := range les {
		if h.buckets[le] >= q*h.count {
			return le
		}
	}
	return math.Inf(1)
}

func (h *promHist) mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// ServerSide is what hookrelay measured itself (its /metrics at the end of the run,
// summed over processes): the time inside hookrelay, without the network and queueing
// in front of it. Quantiles are bucket upper bounds.
type ServerSide struct {
	IngestN        float64 `json:"ingest_requests"`
	IngestMeanMS   float64 `json:"ingest_mean_ms"`
	IngestP50LeMS  float64 `json:"ingest_p50_le_ms"`
	IngestP99LeMS  float64 `json:"ingest_p99_le_ms"`
	AttemptN       float64 `json:"delivery_attempts"`
	AttemptMeanMS  float64 `json:"attempt_mean_ms"`
	AttemptP99LeMS float64 `json:"attempt_p99_le_ms"`
}

// serverSide reads the saved /metrics texts.
func serverSide(texts []string) ServerSide {
	var in, at promHist
	for _, t := range texts {
		in.add(t, "hookrelay_ingest_request_duration_seconds")
		at.add(t, "hookrelay_delivery_attempt_duration_seconds")
	}
	msOf := func(s float64) float64 {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return -1 // JSON has no NaN or Inf: -1 means unknown or beyond the last bucket
		}
		return math.Round(s*1e6) / 1e3
	}
	return ServerSide{
		IngestN: in.count, IngestMeanMS: msOf(in.mean()), IngestP50LeMS: msOf(in.quantile(0.5)), IngestP99LeMS: msOf(in.quantile(0.99)),
		AttemptN: at.count, AttemptMeanMS: msOf(at.mean()), AttemptP99LeMS: msOf(at.quantile(0.99)),
	}
}
