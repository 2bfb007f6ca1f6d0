import CoreMetrics
import Prometheus

extension ServerMetrics {
    /// `factory`, with ``stepDurationBuckets`` for the step histograms when it is Prometheus's (whose
    /// default buckets start at 5 ms: too coarse for small models, whose steps take well under that).
    static func withStepBuckets(_ factory: any MetricsFactory) -> any MetricsFactory {
        guard var prometheus = factory as? PrometheusMetricsFactory else { return factory }
        for label in [stepDurationLabel, sessionStepDurationLabel] {
            prometheus.durationHistogramBuckets[label] = stepDurationBuckets
        }
        return prometheus
    }
}
