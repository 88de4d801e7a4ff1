//! `TargetMeter`: what a target's exchanges count into: its upstream and
//! tenant labels, the registry, and the handles of its labelled series,
//! looked up once each and then kept. Apart from `Target` so that an
//! `Exchange` needs only this, not the target's clients.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter};

use crate::telemetry::metrics::{METHODS, METHOD_LABELS};
use crate::telemetry::Metrics;

pub struct TargetMeter {
    /// The upstream's name (`upstream` label).
    pub name: Arc<str>,
    /// `tenant` label of metrics and logs (`default` without tenants).
    pub tenant_label: Arc<str>,
    pub metrics: Arc<Metrics>,
    series: TargetSeries,
}

impl TargetMeter {
    pub fn new(name: Arc<str>, tenant_label: &str, metrics: Arc<Metrics>) -> Self {
        TargetMeter {
            name,
            tenant_label: tenant_label.into(),
            metrics,
            series: TargetSeries::default(),
        }
    }
}

/// Handles of a target's per-request series, resolved on first use (a
/// series appears in /metrics only once it has a sample) and kept, so the
/// request path does not hash the label values again on every request.
#[derive(Default)]
pub struct TargetSeries {
    /// By `method_index`.
    duration: [OnceLock<Histogram>; METHODS],
    /// By `method_index` and `COMMON_STATUSES` index; other statuses are
    /// looked up each time.
    requests: [[OnceLock<IntCounter>; COMMON_STATUSES.len()]; METHODS],
    request_bytes: OnceLock<IntCounter>,
    response_bytes: OnceLock<IntCounter>,
}

/// The statuses a proxy answers most, with handles kept per method.
const COMMON_STATUSES: [u16; 8] = [200, 204, 206, 304, 400, 404, 429, 502];

impl TargetMeter {
    /// Counts one answered request in `lgtm_proxy_requests_total`
    /// (`method`: a `method_index`; `status_label`: `status` as text, or "0").
    pub fn count_request(&self, method: usize, status: u16, status_label: &str) {
        let lookup = || {
            self.metrics.requests.with_label_values(&[
                &self.name,
                &self.tenant_label,
                METHOD_LABELS[method],
                status_label,
            ])
        };
        match COMMON_STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.series.requests[method][i].get_or_init(lookup).inc(),
            None => lookup().inc(),
        }
    }

    /// `lgtm_proxy_request_duration_seconds` for a `method_index`.
    pub fn duration_series(&self, method: usize) -> &Histogram {
        self.series.duration[method].get_or_init(|| {
            self.metrics.duration.with_label_values(&[
                &self.name,
                &self.tenant_label,
                METHOD_LABELS[method],
            ])
        })
    }

    pub fn request_bytes_series(&self) -> &IntCounter {
        self.series.request_bytes.get_or_init(|| {
            self.metrics
                .request_bytes
                .with_label_values(&[&self.name, &self.tenant_label])
        })
    }

    pub fn response_bytes_series(&self) -> &IntCounter {
        self.series.response_bytes.get_or_init(|| {
            self.metrics
                .response_bytes
                .with_label_values(&[&self.name, &self.tenant_label])
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kept_and_looked_up_request_series_count_the_same() {
        let t = &crate::proxy::headers::tests::target().meter;
        for _ in 0..3 {
            t.count_request(0, 200, "200"); // GET, kept handle
            t.count_request(0, 418, "418"); // GET, looked up
        }
        t.count_request(2, 200, "200"); // POST
        let count = |method: &str, status: &str| {
            t.metrics
                .requests
                .with_label_values(&[&t.name, &t.tenant_label, method, status])
                .get()
        };
        assert_eq!(count("GET", "200"), 3);
        assert_eq!(count("GET", "418"), 3);
        assert_eq!(count("POST", "200"), 1);
    }
}
