//! The parts of a configuration that other modules' own specs refer to:
//! upstreams, tenants, their clients, routes, and the defaults. Nothing
//! here refers back to those specs, so `rules_sync` and `remote_write` can
//! use these types without an import cycle through `Config`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use super::Secret;
use crate::access::{AccessClass, AccessSet};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    /// Effective upstreams: the tenant's overrides on top of the top level.
    pub upstreams: BTreeMap<String, Upstream>,
    pub clients: Vec<Client>,
    pub client_tokens_file: Option<PathBuf>,
    pub max_in_flight: Option<usize>,
    /// Namespaces whose team-written resources may act for this tenant.
    pub namespaces: Vec<String>,
}

/// A client credential that selects a tenant.
#[derive(Debug, Clone)]
pub struct Client {
    pub name: String,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub access: AccessSet,
    pub rate: Option<f64>,
    /// mTLS: a client certificate with this subject CN is this client.
    pub cert_cn: Option<String>,
    /// A verified ServiceAccount token naming this account is this client.
    pub service_account: Option<crate::kubernetes_auth::spec::AccountPattern>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The URL's own path without a trailing `/` (`""` for none).
    pub base_path: String,
    /// `None` when `basic_auth = false`.
    pub credentials: Option<Credentials>,
    /// X-Scope-OrgID to send; `None` sends none.
    pub tenant: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Extra trusted CA for this upstream, read and parsed at load time.
    pub ca: Option<CaFile>,
    /// Connections open to this upstream at most.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub token: Secret,
}

impl Upstream {
    /// The base URL for display (never holds a secret: userinfo is rejected).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    pub upstream: String,
    /// Replaces the matched prefix; `""` drops it.
    pub rewrite: String,
    /// Overrides the class decided from path and method.
    pub class: Option<AccessClass>,
    pub upgrade_idle_timeout: Duration,
    pub max_body_bytes: Option<u64>,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8085";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_VIA_NAME: &str = "lgtm-proxy";
pub const DEFAULT_UPSTREAM_MAX_CONNECTIONS: usize = 256;
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The name of the top-level configuration in logs and metrics.
pub const DEFAULT_TENANT: &str = "default";

/// The built-in routes: (prefix, upstream, rewrite).
pub const BUILTIN_ROUTES: &[(&str, &str, &str)] = &[
    ("/api/prom", "prometheus", "/api/prom"),
    ("/prometheus", "prometheus", "/api/prom"),
    ("/loki", "loki", "/loki"),
    ("/tempo", "tempo", "/tempo"),
    ("/otlp", "otlp", "/otlp"),
    ("/alertmanager", "alertmanager", "/alertmanager"),
    ("/api/v1/alerts", "alertmanager", "/api/v1/alerts"),
    (
        "/opentelemetry.proto.collector.trace.v1.TraceService",
        "tempo_grpc",
        "/opentelemetry.proto.collector.trace.v1.TraceService",
    ),
    // Profiles: the HTTP API under its own prefix, and the Connect/gRPC
    // services the Pyroscope SDKs and Alloy call on the server's root.
    ("/pyroscope", "pyroscope", ""),
    (
        "/push.v1.PusherService",
        "pyroscope",
        "/push.v1.PusherService",
    ),
    (
        "/querier.v1.QuerierService",
        "pyroscope",
        "/querier.v1.QuerierService",
    ),
];
