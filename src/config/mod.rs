//! Configuration: figment layers (defaults < TOML < environment), raw serde
//! structs, and one validate step that yields the typed `Config` or every
//! problem at once, each naming its key. Nothing downstream re-checks.

mod base_url;
mod env;
mod files;
mod model;
mod parts;
mod raw;
mod render;
mod secret;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;

pub use base_url::{parse_base_url, BaseUrlError};
pub use env::{map_name, EnvKey, EnvLayer, BUILTIN_UPSTREAMS};
pub use files::{
    read_bounded, read_secret_file, read_small_file, FileError, MAX_SECRET_FILE_BYTES,
};
pub use model::{Config, ConfigErrors, DynamicConfig, LogFormat, StartupConfig, START_ONLY_KEYS};
pub use parts::{
    CaFile, Client, Credentials, Route, Tenant, Upstream, BUILTIN_ROUTES, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_DELAY,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TENANT, DEFAULT_TIMEOUT, DEFAULT_UPGRADE_IDLE_TIMEOUT,
    DEFAULT_UPSTREAM_MAX_CONNECTIONS, DEFAULT_VIA_NAME, DEFAULT_WATCH_INTERVAL,
};
pub use raw::{RawClient, RawConfig, RawKubernetesAuth, RawRoute, RawTenant, RawUpstream};
pub use render::{config_warnings, render_effective};
pub use secret::{Secret, REDACTED};
pub use tls::{subject_cn, RawTls, ServerTls};
pub use validate::validate;

/// Load from an optional TOML file and the process environment, then validate.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    load_env(path, None).map(|(config, _)| config)
}

/// Load a reload of `previous`: client credential files that can't be used
/// revoke their tokens, upstream token files that can't be used keep their
/// last good token; both come back as warnings.
pub fn load_reload(
    path: Option<&Path>,
    previous: &DynamicConfig,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    load_env(path, Some(previous))
}

fn load_env(
    path: Option<&Path>,
    previous: Option<&DynamicConfig>,
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
    previous: Option<&DynamicConfig>,
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
