//! Configuration: figment layers (defaults < TOML < environment), raw serde
//! structs, and one validate step that yields the typed `Config` or every
//! problem at once, each naming its key. Nothing downstream re-checks.

mod env;
mod files;
mod raw;
mod render;
mod secret;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use http::uri::{Authority, Scheme};

use crate::access::{AccessClass, AccessSet};

pub use env::{map_name, EnvKey, EnvLayer, BUILTIN_UPSTREAMS};
pub use files::{
    read_bounded, read_secret_file, read_small_file, FileError, MAX_SECRET_FILE_BYTES,
};
pub use raw::{RawClient, RawConfig, RawRoute, RawTenant, RawUpstream};
pub use render::{config_warnings, render_effective};
pub use secret::{Secret, REDACTED};
pub use tls::{subject_cn, RawTls, ServerTls};
pub use validate::{parse_base_url, validate, BaseUrlError};

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
];

/// Load from an optional TOML file and the process environment, then validate.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    load_env(path, None).map(|(config, _)| config)
}

/// Load a reload of `previous`: client credential files that can't be used
/// revoke their tokens, upstream token files that can't be used keep their
/// last good token; both come back as warnings.
pub fn load_reload(
    path: Option<&Path>,
    previous: &Config,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    load_env(path, Some(previous))
}

fn load_env(
    path: Option<&Path>,
    previous: Option<&Config>,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    let (vars, problems) = process_env(std::env::vars_os());
    with_env_problems(load_with(path, vars, previous), problems)
}

/// Load from TOML text and an environment as the process gets it (names
/// and values need not be UTF-8), then validate: what `serve` does with a
/// file's contents, without reading the process's own environment. The
/// fuzz target `env_and_toml` calls this.
pub fn load_text<I>(toml: Option<&str>, vars: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    let (vars, problems) = process_env(vars);
    with_env_problems(layer(toml, vars).and_then(validate), problems)
}

/// A load's result with the environment's own problems added.
fn with_env_problems<T>(
    loaded: Result<T, ConfigErrors>,
    problems: Vec<String>,
) -> Result<T, ConfigErrors> {
    match loaded {
        Ok(loaded) if problems.is_empty() => Ok(loaded),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(mut more)) => {
            more.extend(problems);
            Err(ConfigErrors(more))
        }
    }
}

/// The environment as text. A variable that is not UTF-8 is ignored unless
/// it is one of ours (`LGTM_*`, or `TOKIO_WORKER_THREADS`, which the runtime
/// would otherwise refuse with a panic): then it is a problem naming the
/// variable, never its value (it could be a token).
pub fn process_env<I>(vars: I) -> (Vec<(String, String)>, Vec<String>)
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in vars {
        let ours = |n: &[u8]| n.starts_with(b"LGTM_") || n == b"TOKIO_WORKER_THREADS";
        match (name.to_str(), value.to_str()) {
            (Some(n), Some(v)) => {
                if n == "TOKIO_WORKER_THREADS" && !v.trim().parse::<usize>().is_ok_and(|t| t > 0) {
                    problems.push(format!(
                        "{n}: must be a whole number of runtime threads, at least 1"
                    ));
                }
                out.push((n.to_string(), v.to_string()));
            }
            (Some(n), None) if ours(n.as_bytes()) => {
                problems.push(format!("{n}: the value is not valid UTF-8"));
            }
            (None, _) if ours(name.as_bytes()) => {
                problems.push(format!(
                    "{}: the variable's name is not valid UTF-8",
                    String::from_utf8_lossy(name.as_bytes())
                ));
            }
            _ => {}
        }
    }
    (out, problems)
}

/// Load from an optional TOML file and the given environment, then validate.
pub fn load_from<I>(path: Option<&Path>, vars: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    load_with(path, vars, None).map(|(config, _)| config)
}

fn load_with<I>(
    path: Option<&Path>,
    vars: I,
    previous: Option<&Config>,
) -> Result<(Config, Vec<String>), ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    let file = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => Some(s),
            Err(e) => {
                return Err(ConfigErrors(vec![format!(
                    "config file {}: {}",
                    p.display(),
                    e.kind()
                )]))
            }
        },
        None => None,
    };
    let raw = layer(file.as_deref(), vars)?;
    let (mut config, warnings) = match previous {
        Some(prev) => validate::validate_reload(raw, prev)?,
        None => (validate(raw)?, Vec::new()),
    };
    if let Some(p) = path {
        config.watched_files.insert(0, p.to_path_buf());
    }
    Ok((config, warnings))
}

/// Merge the layers into the raw config. Errors name the key and the
/// source, never the offending value (it could be a secret).
pub fn layer<I>(toml: Option<&str>, vars: I) -> Result<RawConfig, ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut figment = Figment::new();
    let mut names: Vec<String> = BUILTIN_UPSTREAMS.iter().map(|s| s.to_string()).collect();
    if let Some(text) = toml {
        let file = Figment::from(Toml::string(text));
        if let Ok(ups) = file.extract_inner::<BTreeMap<String, toml::Value>>("upstreams") {
            for k in ups.into_keys() {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        figment = figment.merge(Toml::string(text));
    }
    figment = figment.merge(EnvLayer::from_vars(vars, &names));
    let mut raw = figment
        .extract::<RawConfig>()
        .map_err(|e| ConfigErrors(e.into_iter().map(|e| describe_figment(&e)).collect()))?;
    let (token, file) = env_secret_wins(&figment, "");
    clear_overridden(&mut raw.token, &mut raw.token_file, token, file);
    for (name, up) in raw.upstreams.iter_mut() {
        let (token, file) = env_secret_wins(&figment, &format!("upstreams.{name}."));
        clear_overridden(&mut up.token, &mut up.token_file, token, file);
    }
    Ok(raw)
}

/// Whether `token` / `token_file` under `prefix` came from the environment.
fn env_secret_wins(figment: &Figment, prefix: &str) -> (bool, bool) {
    let from_env = |key: &str| {
        figment
            .find_metadata(&format!("{prefix}{key}"))
            .is_some_and(|m| m.name == "environment")
    };
    (from_env("token"), from_env("token_file"))
}

/// The environment always wins: a token from env replaces a token_file from
/// the file and the other way round. Both from one source stays a problem.
fn clear_overridden(
    token: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    token_env: bool,
    file_env: bool,
) {
    if token.is_some() && file.is_some() {
        if token_env && !file_env {
            *file = None;
        } else if file_env && !token_env {
            *token = None;
        }
    }
}

fn describe_figment(e: &figment::Error) -> String {
    use figment::error::Kind;
    let mut key = e.path.join(".");
    let what = match &e.kind {
        Kind::Message(m) => sanitize_message(m),
        Kind::InvalidType(_, expected) => format!("invalid type: expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("invalid value: expected {expected}"),
        Kind::InvalidLength(_, expected) => format!("invalid length: expected {expected}"),
        Kind::UnknownVariant(_, _) => "unknown variant".to_string(),
        Kind::UnknownField(field, _) => {
            if e.path.last().map(String::as_str) != Some(field.as_ref()) {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(field);
            }
            "unknown key".to_string()
        }
        Kind::MissingField(field) => {
            if e.path.last().map(String::as_str) != Some(field.as_ref()) {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(field);
            }
            "missing".to_string()
        }
        Kind::DuplicateField(field) => format!("duplicate key {field}"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "number out of range".to_string(),
        Kind::Unsupported(_) | Kind::UnsupportedKey(_, _) => "unsupported value".to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("config{source}: {what}")
    } else {
        format!("{key}{source}: {what}")
    }
}

/// TOML parse errors quote the offending line, which may hold a token:
/// keep only the first line (position and kind).
fn sanitize_message(m: &str) -> String {
    m.lines().next().unwrap_or("invalid").to_string()
}
