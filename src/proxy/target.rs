//! `Target`: one upstream as the hot path needs it, built once at config
//! load: URI parts, the Authorization and X-Scope-OrgID values (marked
//! sensitive), timeouts, its pooled client and its metric labels.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::uri::{Authority, Scheme};
use http::HeaderValue;

use super::client::Clients;
use super::meter::TargetMeter;
use crate::config::{Secret, Upstream};
use crate::telemetry::Metrics;

pub struct Target {
    pub name: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub base_path: Box<str>,
    pub authorization: Option<HeaderValue>,
    pub org_id: Option<HeaderValue>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub clients: Clients,
    /// Labels, registry and series handles its exchanges count into.
    pub meter: Arc<TargetMeter>,
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
        let name: Arc<str> = up.name.as_str().into();
        Target {
            credentials_id,
            credentials_since: SystemTime::now(),
            name: name.clone(),
            scheme: up.scheme.clone(),
            authority: up.authority.clone(),
            base_path: up.base_path.as_str().into(),
            authorization,
            org_id,
            timeout: up.timeout,
            connect_timeout: up.connect_timeout,
            idle_timeout: up.idle_timeout,
            clients,
            meter: Arc::new(TargetMeter::new(name, tenant_label, metrics)),
        }
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
}
