//! The metrics registry. Names and label sets are the contract's; labels are
//! bounded: upstream and tenant names come from config, methods are
//! normalized, status is the numeric code, and no raw path is ever a label.

use http::Method;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Upstream label for requests that never reached a route.
pub const NO_UPSTREAM: &str = "none";

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub request_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub in_flight: IntGauge,
    pub auth_failures: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_last_success: Gauge,
    /// Unix time the ServiceAccount token keys were last loaded (0: never).
    pub jwks_last_refresh: Gauge,
    pub credentials_age: GaugeVec,
    pub upgraded_sessions: IntGauge,
    pub remote_write: super::remote_write::RemoteWriteMetrics,
    pub rules_sync: super::rules_sync::RulesSyncMetrics,
}

/// Buckets from 5 ms to 2 min: remote-write pushes are fast, Loki queries slow.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_requests_total",
                "Requests answered, by upstream, tenant, method and status code.",
            ),
            &["upstream", "tenant", "method", "status"],
        )
        .expect("static metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "lgtm_proxy_request_duration_seconds",
                "Time from request received to the last response byte sent.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["upstream", "tenant", "method"],
        )
        .expect("static metric definition");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_upstream_errors_total",
                "Failed upstream exchanges, by kind: connect, timeout, tls, reset, other.",
            ),
            &["upstream", "kind"],
        )
        .expect("static metric definition");
        let request_bytes = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_request_bytes_total",
                "Request body bytes forwarded upstream.",
            ),
            &["upstream", "tenant"],
        )
        .expect("static metric definition");
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_response_bytes_total",
                "Response body bytes sent to clients.",
            ),
            &["upstream", "tenant"],
        )
        .expect("static metric definition");
        let in_flight = IntGauge::new(
            "lgtm_proxy_in_flight_requests",
            "Requests being proxied now.",
        )
        .expect("static metric definition");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_auth_failures_total",
                "Requests refused by client authentication, by reason.",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_config_reloads_total",
                "Config reload attempts, by result (success, failure).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let config_last_success = Gauge::new(
            "lgtm_proxy_config_last_reload_success_timestamp_seconds",
            "Unix time of the last config load that succeeded.",
        )
        .expect("static metric definition");
        let jwks_last_refresh = Gauge::new(
            "lgtm_proxy_jwks_last_refresh_timestamp_seconds",
            "Unix time the keys that verify Kubernetes ServiceAccount tokens were last loaded (0: never).",
        )
        .expect("static metric definition");
        let credentials_age = GaugeVec::new(
            Opts::new(
                "lgtm_proxy_credentials_age_seconds",
                "Seconds since each upstream credential last changed (or was first loaded).",
            ),
            &["upstream", "tenant"],
        )
        .expect("static metric definition");
        let upgraded_sessions = IntGauge::new(
            "lgtm_proxy_upgraded_sessions",
            "Upgraded (WebSocket) sessions open now.",
        )
        .expect("static metric definition");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "lgtm_proxy_build_info",
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )
        .expect("static metric definition");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Both reload results exist from the start, so a failure alert's
        // `increase()` sees the first failure.
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }

        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(request_bytes.clone()),
            Box::new(response_bytes.clone()),
            Box::new(in_flight.clone()),
            Box::new(auth_failures.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_last_success.clone()),
            Box::new(jwks_last_refresh.clone()),
            Box::new(credentials_age.clone()),
            Box::new(upgraded_sessions.clone()),
            Box::new(build_info),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        let remote_write = super::remote_write::RemoteWriteMetrics::register(&registry);
        let rules_sync = super::rules_sync::RulesSyncMetrics::register(&registry);
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            request_bytes,
            response_bytes,
            in_flight,
            auth_failures,
            config_reloads,
            config_last_success,
            jwks_last_refresh,
            credentials_age,
            upgraded_sessions,
            remote_write,
            rules_sync,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The method labels, indexed by `method_index`: bounded, anything else
/// is "other".
pub const METHOD_LABELS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// How many values the method label has.
pub const METHODS: usize = METHOD_LABELS.len();

/// A method's place in `METHOD_LABELS`, for per-method handle tables.
pub fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The `method` label of a request.
pub fn method_label(m: &Method) -> &'static str {
    METHOD_LABELS[method_index(m)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
        assert_eq!(method_label(&Method::CONNECT), "other");
    }

    #[test]
    fn every_method_label_has_its_own_index() {
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::CONNECT,
        ];
        let mut seen: Vec<usize> = methods.iter().map(method_index).collect();
        for m in &methods {
            assert_eq!(method_label(m), METHOD_LABELS[method_index(m)]);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), METHODS);
    }

    #[test]
    fn render_has_the_contract_names() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["loki", "default", "GET", "200"])
            .inc();
        m.duration
            .with_label_values(&["loki", "default", "GET"])
            .observe(0.1);
        m.upstream_errors
            .with_label_values(&["loki", "connect"])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "lgtm_proxy_requests_total{method=\"GET\",status=\"200\",tenant=\"default\",upstream=\"loki\"} 1",
            "lgtm_proxy_request_duration_seconds_bucket",
            "lgtm_proxy_upstream_errors_total{kind=\"connect\",upstream=\"loki\"} 1",
            "lgtm_proxy_build_info",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
