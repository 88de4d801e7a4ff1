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

/// The keys a running proxy takes at start only: the sockets it listens
/// on, its logging, and its shutdown timings (the runtime's
/// `TOKIO_WORKER_THREADS` too, outside the config). Everything else follows
/// a reload: routes, tenants, clients, secrets, TLS, `header_read_timeout`,
/// `max_connections`, `max_in_flight` and the jobs.
pub const START_ONLY_KEYS: [&str; 6] = [
    "listen",
    "admin_listen",
    "log",
    "log_format",
    "shutdown_delay",
    "shutdown_grace",
];

/// The start-only keys whose value differs between `running` and `next`:
/// a reload cannot apply them, and says so.
pub fn start_only_changes(running: &Config, next: &Config) -> Vec<&'static str> {
    let changed = [
        running.listen != next.listen,
        running.admin_listen != next.admin_listen,
        running.log != next.log,
        running.log_format != next.log_format,
        running.shutdown_delay != next.shutdown_delay,
        running.shutdown_grace != next.shutdown_grace,
    ];
    START_ONLY_KEYS
        .into_iter()
        .zip(changed)
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect()
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    /// Inbound: how long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// The own endpoints' separate listener, when set.
    pub admin_listen: Option<SocketAddr>,
    /// `Via: 1.1 <via_name>` on every proxied request; a request that
    /// carries it already is a loop (508).
    pub via_name: String,
    pub log: String,
    pub log_format: LogFormat,
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
}
