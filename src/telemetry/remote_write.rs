//! Metrics of the remote-write jobs, with the seed's names (no
//! `lgtm_proxy_` prefix: dashboards written for the seed keep working).
//! Labels are bounded by config: tenant, target type, job, source URL.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

pub struct RemoteWriteMetrics {
    pub collected: IntCounterVec,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub dropped: IntCounterVec,
    pub last_success: GaugeVec,
    pub source_up: IntGaugeVec,
}

const PUSH_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl RemoteWriteMetrics {
    pub fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        };
        let collected = counter(
            "remote_write_metrics_collected_total",
            "Series collected from the sources for remote-write jobs (after the namespace filter).",
            &["tenant", "target_type"],
        );
        let requests = counter(
            "remote_write_requests_total",
            "Pushes to remote-write targets, by HTTP status (`error`: no response).",
            &["tenant", "target_type", "status"],
        );
        let dropped = counter(
            "remote_write_samples_dropped_total",
            "Samples given up: queue_full (target too slow or down), rejected (4xx), over_limit (collection too large).",
            &["tenant", "target_type", "reason"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "remote_write_request_duration_seconds",
                "Duration of one push to a remote-write target.",
            )
            .buckets(PUSH_BUCKETS.to_vec()),
            &["tenant", "target_type"],
        )
        .expect("static metric definition");
        let last_success = GaugeVec::new(
            Opts::new(
                "remote_write_last_success_timestamp_seconds",
                "Unix time a job's series were last delivered in full.",
            ),
            &["namespace", "name", "tenant"],
        )
        .expect("static metric definition");
        let source_up = IntGaugeVec::new(
            Opts::new(
                "remote_write_source_up",
                "1 when a source Prometheus answered its last /-/healthy check with 200.",
            ),
            &["source"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(last_success.clone()),
            Box::new(source_up.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        RemoteWriteMetrics {
            collected,
            requests,
            duration,
            dropped,
            last_success,
            source_up,
        }
    }
}
