//! The config as written: serde structs for the TOML file and the environment
//! layer, unknown keys rejected. Nothing here is checked beyond its type;
//! `validate` turns it into the typed `Config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub shutdown_delay: Option<String>,
    pub shutdown_grace: Option<String>,
    pub header_read_timeout: Option<String>,
    /// A second listener for /health, /ready and /metrics only, with no
    /// client limits (probes and scrapes never wait behind clients).
    pub admin_listen: Option<String>,
    /// This proxy's name in `Via` (loop detection).
    pub via_name: Option<String>,
    pub log: Option<String>,
    pub log_format: Option<String>,
    /// Every proxied request must present client credentials.
    pub require_client_auth: Option<bool>,
    /// How often the config file and secret files are checked for changes.
    pub watch_interval: Option<String>,
    /// Open client connections at most; beyond it new ones get 503.
    pub max_connections: Option<usize>,
    /// Requests in flight at most (all tenants); beyond it 503.
    pub max_in_flight: Option<usize>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
    pub tls: Option<super::RawTls>,
    pub remote_write: Option<crate::remote_write::RawRemoteWrite>,
    pub rules_sync: Option<crate::rules_sync::RawRulesSync>,
    /// ServiceAccount tokens as client credentials.
    pub kubernetes_auth: Option<RawKubernetesAuth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesAuth {
    /// The cluster's service-account-issuer (the tokens' `iss`).
    pub issuer: Option<String>,
    /// A token's `aud` must name one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The signing keys from this file instead of OIDC discovery.
    pub jwks_file: Option<PathBuf>,
    /// Discovery: the CA that signs the issuer's certificate (default: the
    /// pod's `ca.crt`, when mounted).
    pub ca_file: Option<PathBuf>,
    /// Discovery: the bearer token sent to the issuer (default: the pod's
    /// own ServiceAccount token, when mounted).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Kubernetes namespaces whose MetricAccess manifests and
    /// PrometheusRules may act for this tenant.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// One client token per line; `#` comments and blank lines ignored.
    pub client_tokens_file: Option<PathBuf>,
    /// Concurrent requests for this tenant, counted separately for writes
    /// and for reads (so long queries cannot starve ingest).
    pub max_in_flight: Option<usize>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    pub token_file: Option<PathBuf>,
    /// Access classes: read, write, admin (default all).
    pub access: Option<Vec<String>>,
    /// Requests per second (token bucket, burst = one second's worth),
    /// kept separately for writes and for reads.
    pub rate: Option<f64>,
    /// mTLS: the subject CN of this client's certificate (needs
    /// `tls.client_ca_file`); instead of or beside `token_file`.
    pub cert_cn: Option<String>,
    /// The ServiceAccount whose tokens are this client (`namespace/name`,
    /// or `namespace/*`; needs `[kubernetes_auth]`).
    pub service_account: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Option<String>,
    /// Connections open to this upstream at most (its pool).
    pub max_connections: Option<usize>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub user: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub tenant: Option<String>,
    pub basic_auth: Option<bool>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    /// No body byte in either direction this long: the exchange is aborted.
    pub idle_timeout: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    pub rewrite: Option<String>,
    /// Access class for all of this route's traffic: read, write or admin.
    pub class: Option<String>,
    /// An upgraded (WebSocket) session with no byte either way this long
    /// is closed.
    pub upgrade_idle_timeout: Option<String>,
    /// Request bodies larger than this are refused with 413 (default: no
    /// limit; Grafana Cloud enforces its own).
    pub max_body_bytes: Option<u64>,
}

/// Grafana Cloud user IDs are numbers; `user = 2668285` should work as well
/// as `user = "2668285"`.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        S(String),
        U(u64),
        I(i64),
    }
    Ok(Option::<StrOrNum>::deserialize(d)?.map(|v| match v {
        StrOrNum::S(s) => s,
        StrOrNum::U(n) => n.to_string(),
        StrOrNum::I(n) => n.to_string(),
    }))
}
