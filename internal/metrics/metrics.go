// Package metrics is hookrelay's Prometheus registry: the series the README lists,
// fed by the ingest, deliver and schedule observers (which this type implements) and
// by gauges read at scrape time.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets of the latency histograms, in seconds: from a fast ingest (≈1 ms) to a
// merchant POST at the longest timeout.
var (
	ingestBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	attemptBuckets  = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	latenessBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// Metrics holds hookrelay's series. The zero value is not usable; use New.
type Metrics struct {
	reg             *prometheus.Registry
	ingestRequests  *prometheus.CounterVec
	ingestDuration  *prometheus.HistogramVec
	publishFailures *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	inFlight        *prometheus.GaugeVec
	lateness        prometheus.Histogram
}

// New returns the registry with every series registered, plus the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ingestRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_ingest_requests_total",
			Help: "Provider requests by provider, source and outcome (accepted, duplicate, or the answer's error code).",
		}, []string{"provider", "source", "outcome"}),
		ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookrelay_ingest_request_duration_seconds",
			Help:    "Time to answer a provider request.",
			Buckets: ingestBuckets,
		}, []string{"provider", "source"}),
		publishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_publish_failures_total",
			Help: "JetStream publishes that failed, by stream.",
		}, []string{"stream"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_deliveries_total",
			Help: "Delivery attempts by endpoint and outcome (delivered, retry, dead).",
		}, []string{"endpoint", "outcome"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookrelay_delivery_attempt_duration_seconds",
			Help:    "Duration of a delivery attempt (the signed POST), by endpoint.",
			Buckets: attemptBuckets,
		}, []string{"endpoint"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookrelay_deliveries_in_flight",
			Help: "POSTs to each endpoint running now in this process.",
		}, []string{"endpoint"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookrelay_scheduler_lateness_seconds",
			Help:    "How long after its due time a retry was claimed.",
			Buckets: latenessBuckets,
		}),
	}
	m.reg.MustRegister(m.ingestRequests, m.ingestDuration, m.publishFailures, m.deliveries,
		m.attemptDuration, m.inFlight, m.lateness,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format. A scrape-time gauge that
// cannot be read is left out of that scrape and reported to errLog (nil: not
// reported); the other series are still served.
func (m *Metrics) Handler(errLog promhttp.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: errLog})
}

// IngestRequest implements ingest.Observer.
func (m *Metrics) IngestRequest(provider, source, outcome string, d time.Duration) {
	m.ingestRequests.WithLabelValues(provider, source, outcome).Inc()
	m.ingestDuration.WithLabelValues(provider, source).Observe(d.Seconds())
}

// PublishFailed implements ingest.Observer and deliver.PublishObserver.
func (m *Metrics) PublishFailed(stream string) { m.publishFailures.WithLabelValues(stream).Inc() }

// Attempted implements deliver.Observer.
// The duration goes in first: a scrape that sees the attempt counted sees its
// duration too (TestMetrics once scraped between the two).
func (m *Metrics) Attempted(endpoint, outcome string, d time.Duration) {
	m.attemptDuration.WithLabelValues(endpoint).Observe(d.Seconds())
	m.deliveries.WithLabelValues(endpoint, outcome).Inc()
}

// InFlight implements deliver.Observer.
func (m *Metrics) InFlight(endpoint string, delta int) {
	m.inFlight.WithLabelValues(endpoint).Add(float64(delta))
}

// Claimed implements schedule.Observer.
func (m *Metrics) Claimed(late time.Duration) { m.lateness.Observe(late.Seconds()) }

// ScrapeGauges registers gauges read at each scrape by read, which returns each
// gauge's value by name. The names and help texts are gauges'. A read is bounded by
// timeout; if it fails, none of them is in that scrape.
func (m *Metrics) ScrapeGauges(gauges map[string]string, timeout time.Duration, read func(ctx context.Context) (map[string]float64, error)) {
	c := &scrapeCollector{read: read, timeout: timeout, descs: map[string]*prometheus.Desc{}}
	for name, help := range gauges {
		c.descs[name] = prometheus.NewDesc(name, help, nil, nil)
	}
	m.reg.MustRegister(c)
}

type scrapeCollector struct {
	read    func(ctx context.Context) (map[string]float64, error)
	timeout time.Duration
	descs   map[string]*prometheus.Desc
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	vals, err := c.read(ctx)
	for name, d := range c.descs {
		if err != nil {
			ch <- prometheus.NewInvalidMetric(d, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, vals[name])
	}
}
