package serve

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds the server's Prometheus collectors. The nv_* names and
// their meaning follow Triton's metrics documentation (cumulative counters
// in microseconds, counted per request), so Triton dashboards work; the
// residual_* histograms add latency and batch-size distributions.
type metrics struct {
	reg *prometheus.Registry

	success, count, exec           *prometheus.CounterVec
	failure                        *prometheus.CounterVec
	requestUs, queueUs, computeUs  *prometheus.CounterVec
	latency, queueLatency, batches *prometheus.HistogramVec
	queueItems                     *prometheus.GaugeVec
	logger                         *slog.Logger

	// users counts the models (loading, serving or draining) holding
	// each version's series: they are dropped when the last lets go.
	mu    sync.Mutex
	users map[[2]string]int
}

func newMetrics(logger *slog.Logger) *metrics {
	mv := []string{"model", "version"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(mv, labels...))
	}
	// Latency buckets from 100 µs to ~52 s, doubling: one CIFAR image on a
	// core to a large overloaded batch.
	lat := prometheus.ExponentialBuckets(100e-6, 2, 20)
	m := &metrics{
		reg:          prometheus.NewRegistry(),
		success:      counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
		failure:      counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes", "reason"),
		count:        counter("nv_inference_count", "Number of inferences performed (a batch of n counts n)"),
		exec:         counter("nv_inference_exec_count", "Number of model executions (batches) performed"),
		requestUs:    counter("nv_inference_request_duration_us", "Cumulative end-to-end inference request handling duration in microseconds"),
		queueUs:      counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds"),
		computeUs:    counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (each request counts its batch's time)"),
		latency:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "residual_request_duration_seconds", Help: "End-to-end inference request latency", Buckets: lat}, append(mv, "protocol")),
		queueLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "residual_queue_duration_seconds", Help: "Time a request waited for its batch to start", Buckets: lat}, mv),
		batches:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "residual_batch_size", Help: "Images per model execution", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}, mv),
		queueItems:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "residual_queue_images", Help: "Images queued or running"}, mv),
		logger:       logger,
		users:        map[[2]string]int{},
	}
	m.reg.MustRegister(m.success, m.failure, m.count, m.exec, m.requestUs, m.queueUs, m.computeUs,
		m.latency, m.queueLatency, m.batches, m.queueItems,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// failureReasons are nv_inference_request_failure's reason labels
// (classify's), and protocols residual_request_duration_seconds's.
var (
	failureReasons = []string{"REJECTED", "OVERLOADED", "TIMEOUT", "CANCELED", "BACKEND"}
	protocols      = []string{"http", "grpc"}
)

// modelMetrics are the collectors of one model version, every series made
// when the version is added: a series made on first use could be made
// again by a request answered after the version's release deleted it.
type modelMetrics struct {
	success, count, exec, requestUs, queueUs, computeUs prometheus.Counter
	failure                                             map[string]prometheus.Counter
	latency                                             map[string]prometheus.Observer
	queueLatency, batches                               prometheus.Observer
	queueItems                                          prometheus.Gauge
	logger                                              *slog.Logger
}

// fail counts a failed request by reason.
func (mm *modelMetrics) fail(reason string) {
	c, ok := mm.failure[reason]
	if !ok {
		c = mm.failure["BACKEND"]
	}
	c.Inc()
}

func (m *metrics) forModel(name, version string) *modelMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[[2]string{name, version}]++
	l := prometheus.Labels{"model": name, "version": version}
	failure, latency := map[string]prometheus.Counter{}, map[string]prometheus.Observer{}
	fv, lv := m.failure.MustCurryWith(l), m.latency.MustCurryWith(l)
	for _, r := range failureReasons {
		failure[r] = fv.WithLabelValues(r)
	}
	for _, p := range protocols {
		latency[p] = lv.WithLabelValues(p)
	}
	return &modelMetrics{
		success:      m.success.With(l),
		count:        m.count.With(l),
		exec:         m.exec.With(l),
		requestUs:    m.requestUs.With(l),
		queueUs:      m.queueUs.With(l),
		computeUs:    m.computeUs.With(l),
		failure:      failure,
		latency:      latency,
		queueLatency: m.queueLatency.With(l),
		batches:      m.batches.With(l),
		queueItems:   m.queueItems.With(l),
		logger:       m.logger,
	}
}

// release lets go of a model version's series that forModel gave, once
// the model is unloaded, replaced or failed to load; the last release
// removes them: a repository whose versions come and go would otherwise
// export every version it ever served. (A model added again while its
// predecessor drains holds them still.)
func (m *metrics) release(name, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{name, version}
	if m.users[k]--; m.users[k] > 0 {
		return
	}
	delete(m.users, k)
	l := prometheus.Labels{"model": name, "version": version}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.success, m.failure, m.count, m.exec, m.requestUs, m.queueUs, m.computeUs,
		m.latency, m.queueLatency, m.batches, m.queueItems,
	} {
		v.DeletePartialMatch(l)
	}
}

// observeBatch records one model execution.
func (mm *modelMetrics) observeBatch(size int, _ time.Duration, err error) {
	if err != nil {
		return
	}
	mm.exec.Inc()
	mm.batches.Observe(float64(size))
}

// observeRequest records one answered inference request of n images.
func (mm *modelMetrics) observeRequest(protocol string, n int, total time.Duration, r result, err error) {
	if err != nil {
		mm.fail(classify(err).reason)
		return
	}
	mm.success.Inc()
	mm.count.Add(float64(n))
	mm.requestUs.Add(float64(total.Microseconds()))
	mm.queueUs.Add(float64(r.queue.Microseconds()))
	mm.computeUs.Add(float64(r.compute.Microseconds()))
	mm.latency[protocol].Observe(total.Seconds())
	mm.queueLatency.Observe(r.queue.Seconds())
}
