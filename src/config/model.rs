//! The validated configuration as a whole, and what a reload may and may
//! not change of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use super::{Route, ServerTls, Tenant, Upstream};

/// Every problem found in a config, one line each, `key: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// What a running proxy takes at start only: the sockets it listens on,
/// its logging, and its shutdown timings (the runtime's
/// `TOKIO_WORKER_THREADS` too, outside the config). A reload that changes
/// one of these warns and keeps the running value; everything else is the
/// `DynamicConfig`, which a reload replaces whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupConfig {
    pub listen: SocketAddr,
    /// The own endpoints' separate listener, when set.
    pub admin_listen: Option<SocketAddr>,
    pub log: String,
    pub log_format: LogFormat,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
}

/// The config keys of `StartupConfig`, as README lists them.
pub const START_ONLY_KEYS: [&str; 6] = [
    "listen",
    "admin_listen",
    "log",
    "log_format",
    "shutdown_delay",
    "shutdown_grace",
];

impl StartupConfig {
    /// The keys whose value differs in `next`: a reload cannot apply them,
    /// and says so.
    pub fn changes(&self, next: &StartupConfig) -> Vec<&'static str> {
        let StartupConfig {
            listen,
            admin_listen,
            log,
            log_format,
            shutdown_delay,
            shutdown_grace,
        } = self;
        let changed = [
            *listen != next.listen,
            *admin_listen != next.admin_listen,
            *log != next.log,
            *log_format != next.log_format,
            *shutdown_delay != next.shutdown_delay,
            *shutdown_grace != next.shutdown_grace,
        ];
        START_ONLY_KEYS
            .into_iter()
            .zip(changed)
            .filter_map(|(key, differs)| differs.then_some(key))
            .collect()
    }
}

/// The validated configuration: the start-only part and the part a reload
/// replaces. A `Config` reads as its `DynamicConfig` (`Deref`), so code on
/// the request path never names the start-only keys; `State` holds only
/// the dynamic part.
#[derive(Debug, Clone)]
pub struct Config {
    pub startup: StartupConfig,
    pub dynamic: DynamicConfig,
}

impl std::ops::Deref for Config {
    type Target = DynamicConfig;

    fn deref(&self) -> &DynamicConfig {
        &self.dynamic
    }
}

impl std::ops::DerefMut for Config {
    fn deref_mut(&mut self) -> &mut DynamicConfig {
        &mut self.dynamic
    }
}

/// Everything a reload may change: routes, upstreams, tenants, clients,
/// secrets, inbound TLS, `header_read_timeout` (with the HTTP limits of
/// the connections accepted after it), `max_connections`, `max_in_flight`,
/// the jobs and rules sync.
#[derive(Debug, Clone)]
pub struct DynamicConfig {
    /// Inbound: how long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// `Via: 1.1 <via_name>` on every proxied request; a request that
    /// carries it already is a loop (508).
    pub via_name: String,
    /// Configured upstreams (those with a URL), by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Every route, built-in and from the file, including routes whose
    /// upstream is not configured (they answer 404 naming it).
    pub routes: Vec<Route>,
    /// Named tenants (the top level is the tenant `default`).
    pub tenants: BTreeMap<String, Tenant>,
    pub require_client_auth: bool,
    pub watch_interval: Duration,
    /// The config file and every secret file it names: a change to any of
    /// them triggers a reload.
    pub watched_files: Vec<PathBuf>,
    /// Inbound TLS (and mTLS), when configured.
    pub tls: Option<ServerTls>,
    pub max_connections: Option<usize>,
    pub max_in_flight: Option<usize>,
    /// Pull-then-push jobs (`[remote_write]` and MetricAccess manifests).
    pub remote_write: Option<crate::remote_write::RemoteWrite>,
    /// Rule files synced to each tenant's ruler (`[rules_sync]`).
    pub rules_sync: Option<crate::rules_sync::RulesSync>,
    /// ServiceAccount tokens as client credentials (`[kubernetes_auth]`).
    pub kubernetes_auth: Option<crate::kubernetes_auth::spec::KubernetesAuth>,
}
