//! `/metrics`: Prometheus text (OpenMetrics) from one registry. Requests are counted
//! under the names the metrics contract gives applications (`http_requests_total`,
//! `http_request_duration_seconds`), labelled by route template (never the raw path:
//! a path no route matched is `unmatched`), method (an invented one is `other`) and
//! status, so cardinality is bounded whatever clients send, so the control plane is covered by the same
//! recording rules, alerts and dashboards as every app; each probed service is
//! `controlplane_service_up{env,service}`. The jobs' gauges (`controlplane_backup_*`,
//! `controlplane_drift_*`) are a collector of the application layer
//! (`cp_app::metrics::JobGauges`) registered here, read at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a request count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template.
    pub route: String,
    /// The method.
    pub method: String,
    /// The status code.
    pub status: String,
}

/// Labels of a latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
    /// The method.
    pub method: String,
}

/// Labels of a probed service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The environment.
    pub env: String,
    /// The service.
    pub service: String,
}

/// The label of a request's method: one of the standard methods, every other
/// (invented) one `other`, so a client cannot grow the label set.
pub fn method_label(m: &http::Method) -> &'static str {
    use http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map_or("other", Method::as_str)
}

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// 1 when a probed service answered, else 0.
    pub service_up: Family<ServiceLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The registry, with `jobs` read at each scrape.
    pub fn new(jobs: cp_app::metrics::JobGauges) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(jobs));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let service_up = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "Requests answered by controlplane serve, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route template and method",
            latency.clone(),
        );
        registry.register(
            "controlplane_service_up",
            "1 when the last probe of a managed service succeeded, else 0",
            service_up.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            service_up,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}
