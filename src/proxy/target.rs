//! `Target`: one upstream as the hot path needs it, built once at config
//! load: URI parts, the Authorization and X-Scope-OrgID values (marked
//! sensitive), timeouts, its pooled client and its metric labels.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::uri::{Authority, Scheme};
use http::HeaderValue;

use super::client::Clients;
use crate::config::{Secret, Upstream};
use prometheus::{Histogram, IntCounter};

use crate::telemetry::metrics::{METHODS, METHOD_LABELS};
use crate::telemetry::Metrics;

pub struct Target {
    pub name: Arc<str>,
    /// `tenant` label of metrics and logs (`default` without tenants).
    pub tenant_label: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub base_path: Box<str>,
    pub authorization: Option<HeaderValue>,
    pub org_id: Option<HeaderValue>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub clients: Clients,
    pub metrics: Arc<Metrics>,
    /// This target's labelled series, looked up once each and then kept.
    series: TargetSeries,
    /// Hash of `user:token`, to tell whether a reload changed it.
    pub credentials_id: Option<[u8; 32]>,
    /// When these credentials were first loaded (kept across reloads that
    /// leave them unchanged): `lgtm_proxy_credentials_age_seconds`.
    pub credentials_since: SystemTime,
}

impl Target {
    pub fn new(up: &Upstream, tenant_label: &str, clients: Clients, metrics: Arc<Metrics>) -> Self {
        let credentials_id = up.credentials.as_ref().map(|c| {
            let mut raw = Vec::with_capacity(c.user.len() + c.token.expose().len() + 1);
            raw.extend_from_slice(c.user.as_bytes());
            raw.push(b':');
            raw.extend_from_slice(c.token.expose().as_bytes());
            crate::tenant::token_hash(&raw)
        });
        let (authorization, org_id) = identity_headers(up);
        Target {
            credentials_id,
            credentials_since: SystemTime::now(),
            name: up.name.as_str().into(),
            tenant_label: tenant_label.into(),
            scheme: up.scheme.clone(),
            authority: up.authority.clone(),
            base_path: up.base_path.as_str().into(),
            authorization,
            org_id,
            timeout: up.timeout,
            connect_timeout: up.connect_timeout,
            idle_timeout: up.idle_timeout,
            clients,
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

impl Target {
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

/// What every request to `up` carries as the upstream's identity, computed
/// once per config: `Authorization: Basic` (without `basic_auth = false`)
/// and `X-Scope-OrgID`, both marked sensitive.
pub fn identity_headers(up: &Upstream) -> (Option<HeaderValue>, Option<HeaderValue>) {
    let authorization = up
        .credentials
        .as_ref()
        .map(|c| basic_auth(&c.user, &c.token));
    let org_id = up.tenant.as_deref().and_then(|t| {
        let mut v = HeaderValue::from_str(t).ok()?;
        v.set_sensitive(true);
        Some(v)
    });
    (authorization, org_id)
}

/// `Basic base64(user:token)`, marked sensitive so hyper and h2 never log it
/// and HPACK never indexes it.
pub fn basic_auth(user: &str, token: &Secret) -> HeaderValue {
    let mut raw = String::with_capacity(user.len() + token.expose().len() + 1);
    raw.push_str(user);
    raw.push(':');
    raw.push_str(token.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
    let mut v =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_rfc7617_and_is_sensitive() {
        // RFC 7617's own example.
        let v = basic_auth("Aladdin", &Secret::new("open sesame"));
        assert_eq!(v.to_str().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("QWxh"));
    }

    #[test]
    fn kept_and_looked_up_request_series_count_the_same() {
        let t = crate::proxy::headers::tests::target();
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
