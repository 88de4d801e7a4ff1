//! Raw config -> typed `Config`, collecting every problem (`key: message`).
//! Token files are read here, at load time, before the runtime starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::{
    CaFile, Config, ConfigErrors, Credentials, LogFormat, RawConfig, RawUpstream, Route, Secret,
    Upstream, BUILTIN_ROUTES, BUILTIN_UPSTREAMS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_DELAY, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_TIMEOUT,
};

const RESERVED_UPSTREAM_NAMES: &[&str] = &["token", "log", "shutdown", "listen", "config"];

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut p = Problems::default();

    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        p.add("listen", "not a socket address like 0.0.0.0:8085");
        SocketAddr::from(([0, 0, 0, 0], 8085))
    });
    let shutdown_delay = duration(
        &mut p,
        "shutdown_delay",
        &raw.shutdown_delay,
        DEFAULT_SHUTDOWN_DELAY,
        true,
    );
    let shutdown_grace = duration(
        &mut p,
        "shutdown_grace",
        &raw.shutdown_grace,
        DEFAULT_SHUTDOWN_GRACE,
        true,
    );
    let header_read_timeout = duration(
        &mut p,
        "header_read_timeout",
        &raw.header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT,
        false,
    );
    let log = raw.log.clone().unwrap_or_else(|| "info".to_string());
    if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
        p.add(
            "log",
            "not a valid tracing filter (e.g. info,lgtm_proxy=debug)",
        );
    }
    let log_format = match raw.log_format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(_) => {
            p.add("log_format", "must be json or text");
            LogFormat::Json
        }
    };

    let shared_token = secret(
        &mut p,
        "token",
        raw.token.as_ref(),
        raw.token_file.as_deref(),
    );

    let mut upstreams = BTreeMap::new();
    for (name, up) in &raw.upstreams {
        let key = format!("upstreams.{name}");
        if !valid_upstream_name(name) {
            p.add(
                &key,
                "upstream names match [a-z][a-z0-9_]* and are not token, log, shutdown, listen or config",
            );
            continue;
        }
        if let Some(u) = upstream(&mut p, &key, name, up, shared_token.as_ref()) {
            upstreams.insert(name.clone(), u);
        }
    }

    let routes = routes(&mut p, &raw);

    if p.0.is_empty() {
        Ok(Config {
            listen,
            shutdown_delay,
            shutdown_grace,
            header_read_timeout,
            log,
            log_format,
            upstreams,
            routes,
        })
    } else {
        Err(ConfigErrors(p.0))
    }
}

fn valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !RESERVED_UPSTREAM_NAMES.contains(&name)
}

fn duration(
    p: &mut Problems,
    key: &str,
    value: &Option<String>,
    default: Duration,
    zero_ok: bool,
) -> Duration {
    let Some(text) = value else { return default };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() && !zero_ok => {
            p.add(key, "must be greater than zero");
            default
        }
        Ok(d) => d,
        Err(_) => {
            p.add(key, "not a duration like \"60s\", \"5m\" or \"1h30m\"");
            default
        }
    }
}

/// A secret from `token` or `token_file` (never both). Files are read now;
/// a trailing newline is trimmed; an empty secret is a problem.
fn secret(
    p: &mut Problems,
    key: &str,
    token: Option<&Secret>,
    file: Option<&Path>,
) -> Option<Secret> {
    match (token, file) {
        (Some(_), Some(_)) => {
            p.add(key, format!("set either {key} or {key}_file, not both"));
            None
        }
        (Some(t), None) if t.is_empty() => {
            p.add(key, "is empty");
            None
        }
        (Some(t), None) => Some(t.clone()),
        (None, Some(path)) => match read_secret_file(path) {
            Ok(s) => Some(s),
            Err(msg) => {
                p.add(format!("{key}_file"), msg);
                None
            }
        },
        (None, None) => None,
    }
}

/// Read a secret file (a Kubernetes Secret mount): trailing newline trimmed.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim_end_matches(['\r', '\n']);
            if s.is_empty() {
                Err(format!("{} is empty", path.display()))
            } else {
                Ok(Secret::new(s))
            }
        }
        Err(e) => Err(format!("cannot read {}: {}", path.display(), e.kind())),
    }
}

fn upstream(
    p: &mut Problems,
    key: &str,
    name: &str,
    up: &RawUpstream,
    shared_token: Option<&Secret>,
) -> Option<Upstream> {
    let before = p.0.len();
    let timeout = duration(
        p,
        &format!("{key}.timeout"),
        &up.timeout,
        DEFAULT_TIMEOUT,
        false,
    );
    let connect_timeout = duration(
        p,
        &format!("{key}.connect_timeout"),
        &up.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
        false,
    );
    let token_problems = p.0.len();
    let own_token = secret(
        p,
        &format!("{key}.token"),
        up.token.as_ref(),
        up.token_file.as_deref(),
    );
    let token_failed = p.0.len() != token_problems;
    let ca = up
        .ca_file
        .as_ref()
        .and_then(|path| match read_ca_file(path) {
            Ok(certs) => Some(CaFile {
                path: path.clone(),
                certs,
            }),
            Err(m) => {
                p.add(format!("{key}.ca_file"), m);
                None
            }
        });
    // No URL: the upstream is off (its routes answer 404 naming it).
    let url = up.url.as_deref()?;
    let parsed = parse_base_url(url)
        .map_err(|m| p.add(format!("{key}.url"), m))
        .ok();

    let basic_auth = up.basic_auth.unwrap_or(true);
    let credentials = if basic_auth {
        let user = up.user.clone().filter(|u| !u.is_empty());
        if user.is_none() {
            p.add(
                format!("{key}.user"),
                "required when url is set (or set basic_auth = false)",
            );
        } else if user.as_deref().is_some_and(|u| u.contains(':')) {
            p.add(format!("{key}.user"), "must not contain ':'");
        }
        let token = own_token.or_else(|| shared_token.cloned());
        if token.is_none() && !token_failed {
            p.add(
                format!("{key}.token"),
                "required when url is set: set token/token_file here or the shared token (LGTM_TOKEN)",
            );
        }
        user.zip(token)
            .map(|(user, token)| Credentials { user, token })
    } else {
        None
    };
    // X-Scope-OrgID defaults to the user; "" sends none.
    let tenant = match &up.tenant {
        Some(t) if t.is_empty() => None,
        Some(t) => Some(t.clone()),
        None => up.user.clone().filter(|u| !u.is_empty()),
    };
    if let Some(t) = &tenant {
        if http::HeaderValue::from_str(t).is_err() || t.contains(['|', ' ', '\t']) {
            p.add(
                format!("{key}.tenant"),
                "must be visible ASCII without '|' or whitespace",
            );
        }
    }
    let (scheme, authority, base_path) = parsed?;
    if p.0.len() != before {
        return None;
    }
    Some(Upstream {
        name: name.to_string(),
        scheme,
        authority,
        base_path,
        credentials,
        tenant,
        timeout,
        connect_timeout,
        ca,
    })
}

/// Read the PEM certificates of an extra CA file now, so a bad file is a
/// config error and not a failure at the first request.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect();
    match certs {
        Ok(c) if c.is_empty() => Err(format!("{} holds no PEM certificate", path.display())),
        Ok(c) => {
            // The same check the client's root store makes, now instead of
            // at the first request.
            let mut store = rustls::RootCertStore::empty();
            for cert in &c {
                store
                    .add(cert.clone())
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
            Ok(c)
        }
        Err(e) => Err(format!("{}: bad PEM: {e}", path.display())),
    }
}

/// Parse an upstream base URL. Messages never echo the URL: a careless one
/// could carry credentials.
pub fn parse_base_url(url: &str) -> Result<(Scheme, Authority, String), String> {
    if !url.contains("://") {
        return Err("relative URL without a base".to_string());
    }
    let uri: Uri = url.parse().map_err(|_| "invalid URL".to_string())?;
    let scheme = uri.scheme().cloned().ok_or("relative URL without a base")?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(format!("unsupported scheme {scheme} (use http or https)"));
    }
    let authority = uri.authority().cloned().ok_or("URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not allowed: use user and token".to_string());
    }
    if authority.host().is_empty() {
        return Err("URL has no host".to_string());
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("URL must not have a query or fragment".to_string());
    }
    let base = uri.path().trim_end_matches('/').to_string();
    if has_dot_segment(&base) {
        return Err("URL path must not contain . or .. segments".to_string());
    }
    Ok((scheme, authority, base))
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

fn routes(p: &mut Problems, raw: &RawConfig) -> Vec<Route> {
    let mut routes: Vec<Route> = BUILTIN_ROUTES
        .iter()
        .map(|(prefix, upstream, rewrite)| Route {
            prefix: prefix.to_string(),
            upstream: upstream.to_string(),
            rewrite: rewrite.to_string(),
        })
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let before = p.0.len();
        if let Err(m) = check_prefix(&r.prefix) {
            p.add(format!("{key}.prefix"), m);
        } else if seen.contains(&r.prefix.as_str()) {
            p.add(
                format!("{key}.prefix"),
                format!("duplicate prefix {}", r.prefix),
            );
        }
        seen.push(&r.prefix);
        let known = BUILTIN_UPSTREAMS.contains(&r.upstream.as_str())
            || raw.upstreams.contains_key(&r.upstream);
        if !known {
            p.add(
                format!("{key}.upstream"),
                format!(
                    "unknown upstream {:?} (define [upstreams.{}])",
                    r.upstream, r.upstream
                ),
            );
        }
        // Without `rewrite` the prefix is kept as it is.
        let rewrite = r.rewrite.clone().unwrap_or_else(|| r.prefix.clone());
        let rewrite = rewrite.trim_end_matches('/').to_string();
        if r.rewrite.is_some() && !(rewrite.is_empty() || rewrite.starts_with('/'))
            || rewrite.contains(['?', '#'])
            || has_dot_segment(&rewrite)
        {
            p.add(
                format!("{key}.rewrite"),
                "must be empty or a path starting with '/' without ?, # or dot segments",
            );
        }
        if p.0.len() != before {
            continue;
        }
        let route = Route {
            prefix: r.prefix.clone(),
            upstream: r.upstream.clone(),
            rewrite,
        };
        match routes.iter_mut().find(|b| b.prefix == route.prefix) {
            Some(existing) => *existing = route,
            None => routes.push(route),
        }
    }
    routes
}

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with '/'");
    }
    if prefix.len() > 1 && prefix.ends_with('/') {
        return Err("must not end with '/' (prefixes match on segment boundaries)");
    }
    if prefix.contains(['?', '#', '%', ' ']) || prefix.contains("//") || has_dot_segment(prefix) {
        return Err("must be a plain path without ?, #, %, spaces, // or dot segments");
    }
    if crate::routes::RESERVED_PATHS.contains(&prefix) {
        return Err("is reserved for the proxy's own endpoints");
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
