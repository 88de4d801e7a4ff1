//! Raw config -> typed `Config`, collecting every problem (`key: message`).
//! Token files are read here, at load time, before the runtime starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use std::time::Duration;

use crate::access::{AccessClass, AccessSet};
use http::uri::Scheme;
use rustls::pki_types::CertificateDer;

use super::base_url::{has_dot_segment, parse_base_url};
use super::{
    read_secret_file, read_small_file, CaFile, Client, Config, ConfigErrors, Credentials,
    DynamicConfig, LogFormat, RawClient, RawConfig, RawTenant, RawUpstream, Route, Secret,
    StartupConfig, Tenant, Upstream, BUILTIN_ROUTES, BUILTIN_UPSTREAMS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_DELAY,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TENANT, DEFAULT_TIMEOUT, DEFAULT_UPGRADE_IDLE_TIMEOUT,
    DEFAULT_UPSTREAM_MAX_CONNECTIONS, DEFAULT_VIA_NAME, DEFAULT_WATCH_INTERVAL,
};

const RESERVED_UPSTREAM_NAMES: &[&str] = &["token", "log", "shutdown", "listen", "config"];

/// Problems found so far, and every file read (to watch for changes).
/// On a reload (`previous` set), a client credential file that can't be
/// used revokes that client's tokens and an upstream token file that can't
/// be used keeps its last good token: both are `warnings`, not problems,
/// so the rest of the config still reloads.
#[derive(Default)]
struct Problems(
    Vec<String>,
    Vec<std::path::PathBuf>,
    Option<Previous>,
    Vec<String>,
);

/// What a reload may fall back on: the running config's upstream tokens,
/// by their key (`upstreams.loki.token`, `tenants.stage.upstreams.loki.token`).
struct Previous {
    tokens: BTreeMap<String, Secret>,
}

impl Previous {
    fn of(config: &DynamicConfig) -> Previous {
        let mut tokens = BTreeMap::new();
        let scopes = std::iter::once((String::new(), &config.upstreams)).chain(
            config
                .tenants
                .values()
                .map(|t| (format!("tenants.{}.", t.name), &t.upstreams)),
        );
        for (scope, ups) in scopes {
            for u in ups.values() {
                if let Some(c) = &u.credentials {
                    tokens.insert(
                        format!("{scope}upstreams.{}.token", u.name),
                        c.token.clone(),
                    );
                }
            }
        }
        Previous { tokens }
    }
}

impl Problems {
    fn watch(&mut self, path: &Path) {
        if !self.1.iter().any(|p| p == path) {
            self.1.push(path.to_path_buf());
        }
    }

    fn add(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    /// A client credential file that can't be used. At start it is a
    /// problem (exit 78); on a reload it revokes what it held (fail
    /// closed) and the rest of the config still reloads.
    fn client_credentials(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        if self.2.is_some() {
            self.3
                .push(format!("{key}: {msg}; its client tokens are revoked"));
        } else {
            self.add(key, msg);
        }
    }
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    validate_with(raw, None).map(|(config, _)| config)
}

/// Validate a reload of `previous`: also returns the warnings (revoked
/// client credentials, upstream tokens kept from `previous`).
pub fn validate_reload(
    raw: RawConfig,
    previous: &DynamicConfig,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    validate_with(raw, Some(Previous::of(previous)))
}

fn validate_with(
    raw: RawConfig,
    previous: Option<Previous>,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    let mut p = Problems(Vec::new(), Vec::new(), previous, Vec::new());

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
    let admin_listen = raw.admin_listen.as_deref().and_then(|a| {
        let parsed = a.parse::<SocketAddr>().ok();
        if parsed.is_none() {
            p.add("admin_listen", "not a socket address like 0.0.0.0:8086");
        }
        parsed
    });
    if admin_listen.is_some_and(|a| a.port() == listen.port() && a.port() != 0) {
        p.add("admin_listen", "must use another port than listen");
    }
    let via_name = raw
        .via_name
        .clone()
        .unwrap_or_else(|| DEFAULT_VIA_NAME.to_string());
    if via_name.is_empty()
        || !via_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        p.add(
            "via_name",
            "must be a non-empty token of letters, digits, '-', '.' or '_'",
        );
    }
    let log = raw.log.clone().unwrap_or_else(|| "info".to_string());
    if crate::telemetry::logging::filter(&log).is_err() {
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
    let tenants = tenants(&mut p, &raw, shared_token.as_ref());
    let tenant_upstreams = tenants.values().flat_map(|t| {
        t.upstreams
            .values()
            .map(move |u| (format!("tenants.{}.", t.name), u))
    });
    for (scope, u) in upstreams
        .values()
        .map(|u| (String::new(), u))
        .chain(tenant_upstreams)
    {
        if points_at(u, listen) {
            p.add(
                format!("{scope}upstreams.{}.url", u.name),
                format!("is this proxy's own listen address ({listen}): every request would loop"),
            );
        }
    }
    // Configured credential sources, not the tokens loaded from them: a
    // revoked (emptied) tokens file must never turn client auth off.
    let any_clients = tenants
        .values()
        .any(|t| !t.clients.is_empty() || t.client_tokens_file.is_some());
    let require_client_auth = raw.require_client_auth.unwrap_or(any_clients);
    if require_client_auth && !any_clients {
        p.add(
            "require_client_auth",
            "is true but no tenant has client credentials (clients or client_tokens_file): nothing could authenticate",
        );
    }
    let watch_interval = duration(
        &mut p,
        "watch_interval",
        &raw.watch_interval,
        DEFAULT_WATCH_INTERVAL,
        false,
    );
    let tls = raw.tls.as_ref().and_then(|t| {
        p.watch(&t.cert_file);
        p.watch(&t.key_file);
        if let Some(ca) = &t.client_ca_file {
            p.watch(ca);
        }
        super::tls::build(t)
            .map_err(|e| e.into_iter().for_each(|(k, m)| p.add(k, m)))
            .ok()
    });
    let mtls = tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    for t in tenants.values() {
        for c in t.clients.iter().filter(|c| c.cert_cn.is_some()) {
            if !mtls {
                p.add(
                    format!("tenants.{}.clients.{}.cert_cn", t.name, c.name),
                    "needs tls.client_ca_file (client certificates are only asked for with mTLS)",
                );
            }
        }
    }

    let remote_write = raw.remote_write.as_ref().map(|rw| {
        use crate::remote_write::validate::{validate, Context, Found};
        let mut found = Found::default();
        let ctx = Context {
            upstreams: &upstreams,
            tenants: &tenants,
        };
        let v = validate(rw, &ctx, &mut found);
        p.0.append(&mut found.problems);
        for f in &found.watched {
            p.watch(f);
        }
        v
    });
    let rules_sync = raw.rules_sync.as_ref().map(|rs| {
        use crate::rules_sync::load::{validate, DEFAULT_INTERVAL};
        let interval = duration(
            &mut p,
            "rules_sync.interval",
            &rs.interval,
            DEFAULT_INTERVAL,
            false,
        );
        p.watch(&rs.dir);
        validate(rs, interval, &upstreams, &tenants, &mut p.0)
    });
    let max_connections = positive(&mut p, "max_connections", raw.max_connections);
    let max_in_flight = positive(&mut p, "max_in_flight", raw.max_in_flight);
    if p.0.is_empty() {
        let warnings = std::mem::take(&mut p.3);
        Ok((
            Config {
                startup: StartupConfig {
                    listen,
                    admin_listen,
                    log,
                    log_format,
                    shutdown_delay,
                    shutdown_grace,
                },
                dynamic: DynamicConfig {
                    header_read_timeout,
                    via_name,
                    upstreams,
                    routes,
                    tenants,
                    require_client_auth,
                    watch_interval,
                    watched_files: p.1,
                    tls,
                    max_connections,
                    max_in_flight,
                    remote_write,
                    rules_sync,
                },
            },
            warnings,
        ))
    } else {
        Err(ConfigErrors(p.0))
    }
}

fn positive(p: &mut Problems, key: &str, n: Option<usize>) -> Option<usize> {
    if n == Some(0) {
        p.add(key, "must be at least 1 (omit it for no limit)");
    }
    n.filter(|n| *n > 0)
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
        (None, Some(path)) => {
            p.watch(path);
            secret_from_file(p, key, path)
        }
        (None, None) => None,
    }
}

fn secret_from_file(p: &mut Problems, key: &str, path: &Path) -> Option<Secret> {
    match read_secret_file(path) {
        Ok(s) => Some(s),
        Err(msg) => {
            // On a reload, an upstream's token fails static: the proxy
            // keeps writing with the last good one.
            let kept = p.2.as_ref().and_then(|prev| prev.tokens.get(key)).cloned();
            match kept {
                Some(token) => {
                    p.3.push(format!("{key}_file: {msg}; the last good token is kept"));
                    Some(token)
                }
                None => {
                    p.add(format!("{key}_file"), msg);
                    None
                }
            }
        }
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
    let idle_timeout = duration(
        p,
        &format!("{key}.idle_timeout"),
        &up.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        false,
    );
    let max_connections = match up.max_connections {
        Some(0) => {
            p.add(format!("{key}.max_connections"), "must be at least 1");
            DEFAULT_UPSTREAM_MAX_CONNECTIONS
        }
        Some(n) => n,
        None => DEFAULT_UPSTREAM_MAX_CONNECTIONS,
    };
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
        idle_timeout,
        ca,
        max_connections,
    })
}

/// Read and check an extra CA file now, so a bad file is a config error
/// and not a failure at the first request.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, super::tls::CertError> {
    let certs = super::tls::read_certs(path)?;
    super::tls::root_store(path, &certs)?;
    Ok(certs)
}

/// The upstream's URL names `listen` itself: the same port on a loopback
/// address (`localhost` included) or on `listen`'s own address. (A Service
/// name that resolves back here is caught at run time by `Via`.)
fn points_at(u: &Upstream, listen: SocketAddr) -> bool {
    let default_port = if u.scheme == Scheme::HTTPS { 443 } else { 80 };
    if u.authority.port_u16().unwrap_or(default_port) != listen.port() {
        return false;
    }
    let host = u
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == listen.ip(),
        Err(_) => false,
    }
}

fn routes(p: &mut Problems, raw: &RawConfig) -> Vec<Route> {
    let mut routes: Vec<Route> = BUILTIN_ROUTES
        .iter()
        .map(|(prefix, upstream, rewrite)| Route {
            prefix: prefix.to_string(),
            upstream: upstream.to_string(),
            rewrite: rewrite.to_string(),
            class: None,
            upgrade_idle_timeout: DEFAULT_UPGRADE_IDLE_TIMEOUT,
            max_body_bytes: None,
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
            || raw.upstreams.contains_key(&r.upstream)
            || raw
                .tenants
                .values()
                .any(|t| t.upstreams.contains_key(&r.upstream));
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
        let class = r.class.as_deref().and_then(|c| {
            let parsed = AccessClass::parse(c);
            if parsed.is_none() {
                p.add(format!("{key}.class"), "must be read, write or admin");
            }
            parsed
        });
        let upgrade_idle_timeout = duration(
            p,
            &format!("{key}.upgrade_idle_timeout"),
            &r.upgrade_idle_timeout,
            DEFAULT_UPGRADE_IDLE_TIMEOUT,
            false,
        );
        if r.max_body_bytes == Some(0) {
            p.add(
                format!("{key}.max_body_bytes"),
                "must be at least 1 (omit it for no limit)",
            );
        }
        if p.0.len() != before {
            continue;
        }
        let route = Route {
            prefix: r.prefix.clone(),
            upstream: r.upstream.clone(),
            rewrite,
            class,
            upgrade_idle_timeout,
            max_body_bytes: r.max_body_bytes,
        };
        match routes.iter_mut().find(|b| b.prefix == route.prefix) {
            Some(existing) => *existing = route,
            None => routes.push(route),
        }
    }
    routes
}

/// Tenant names end up in X-Scope-OrgID (client-sent), metric labels and
/// logs: no `|` (Loki joins OrgIDs with it), no whitespace, no `default`.
fn valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 150
        && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name != DEFAULT_TENANT
}

fn tenants(
    p: &mut Problems,
    raw: &RawConfig,
    shared_token: Option<&Secret>,
) -> BTreeMap<String, Tenant> {
    let mut out = BTreeMap::new();
    for (name, t) in &raw.tenants {
        let key = format!("tenants.{name}");
        if !valid_tenant_name(name) {
            p.add(&key, "tenant names are letters, digits, '_', '-', '.' (no '|' or whitespace), not \"default\"");
            continue;
        }
        let mut upstreams = BTreeMap::new();
        for (up_name, own) in &t.upstreams {
            let up_key = format!("{key}.upstreams.{up_name}");
            if !valid_upstream_name(up_name) {
                p.add(&up_key, "upstream names match [a-z][a-z0-9_]*");
                continue;
            }
            let merged = inherit(own, raw.upstreams.get(up_name), name);
            if merged.url.is_none() {
                p.add(
                    format!("{up_key}.url"),
                    "required: there is no top-level url to inherit",
                );
                continue;
            }
            if let Some(u) = upstream(p, &up_key, up_name, &merged, shared_token) {
                upstreams.insert(up_name.clone(), u);
            }
        }
        let clients = clients(p, &key, t);
        let max_in_flight = t.max_in_flight.filter(|n| {
            if *n == 0 {
                p.add(format!("{key}.max_in_flight"), "must be at least 1");
            }
            *n > 0
        });
        out.insert(
            name.clone(),
            Tenant {
                name: name.clone(),
                upstreams,
                clients,
                client_tokens_file: t.client_tokens_file.clone(),
                max_in_flight,
                namespaces: namespaces(p, &key, &t.namespaces),
            },
        );
    }
    duplicate_tokens(p, &out);
    out
}

/// A tenant's `namespaces`: Kubernetes namespace names (RFC 1123 labels),
/// each listed once.
fn namespaces(p: &mut Problems, key: &str, list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, ns) in list.iter().enumerate() {
        let valid = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !valid {
            p.add(
                format!("{key}.namespaces[{i}]"),
                "not a Kubernetes namespace name (lower-case letters, digits and '-')",
            );
        } else if out.contains(ns) {
            p.add(format!("{key}.namespaces[{i}]"), "listed twice");
        } else {
            out.push(ns.clone());
        }
    }
    out
}

/// A tenant's upstream: url, user, token, basic_auth, timeouts and CA
/// inherit from the top level; the OrgID never does (a tenant sending the
/// default's OrgID with its own user would write into another tenant).
fn inherit(own: &RawUpstream, top: Option<&RawUpstream>, tenant: &str) -> RawUpstream {
    let top = top.cloned().unwrap_or_default();
    let own_secret = own.token.is_some() || own.token_file.is_some();
    let user = own.user.clone().or(top.user);
    let org = own.tenant.clone().unwrap_or_else(|| {
        user.clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| tenant.to_string())
    });
    RawUpstream {
        url: own.url.clone().or(top.url),
        user,
        token: if own_secret {
            own.token.clone()
        } else {
            top.token
        },
        token_file: if own_secret {
            own.token_file.clone()
        } else {
            top.token_file
        },
        tenant: Some(org),
        basic_auth: own.basic_auth.or(top.basic_auth),
        timeout: own.timeout.clone().or(top.timeout),
        connect_timeout: own.connect_timeout.clone().or(top.connect_timeout),
        idle_timeout: own.idle_timeout.clone().or(top.idle_timeout),
        ca_file: own.ca_file.clone().or(top.ca_file),
        max_connections: own.max_connections.or(top.max_connections),
    }
}

fn clients(p: &mut Problems, key: &str, t: &RawTenant) -> Vec<Client> {
    let mut out = Vec::new();
    for (i, c) in t.clients.iter().enumerate() {
        let ckey = format!("{key}.clients[{i}]");
        if let Some(client) = client(p, &ckey, c) {
            if out.iter().any(|o: &Client| o.name == client.name) {
                p.add(
                    format!("{ckey}.name"),
                    format!("duplicate client name {}", client.name),
                );
            }
            out.push(client);
        }
    }
    if let Some(path) = &t.client_tokens_file {
        p.watch(path);
        match read_small_file(path) {
            Ok(text) => {
                let before = out.len();
                for (n, line) in text.lines().enumerate() {
                    let token = line.trim();
                    if token.is_empty() || token.starts_with('#') {
                        continue;
                    }
                    out.push(Client {
                        name: format!("tokens-file-line-{}", n + 1),
                        token: Some(Secret::new(token)),
                        token_file: None,
                        access: AccessSet::ALL,
                        rate: None,
                        cert_cn: None,
                    });
                }
                if out.len() == before {
                    p.client_credentials(
                        format!("{key}.client_tokens_file"),
                        format!("{} holds no token", path.display()),
                    );
                }
            }
            Err(msg) => p.client_credentials(format!("{key}.client_tokens_file"), msg),
        }
    }
    out
}

fn client(p: &mut Problems, key: &str, c: &RawClient) -> Option<Client> {
    let before = p.0.len();
    if c.name.is_empty() || c.name.contains(char::is_whitespace) {
        p.add(
            format!("{key}.name"),
            "must be non-empty without whitespace",
        );
    }
    let token = match &c.token_file {
        Some(path) => {
            p.watch(path);
            read_secret_file(path)
                .map_err(|m| p.client_credentials(format!("{key}.token_file"), m))
                .ok()
        }
        None if c.cert_cn.is_some() => None,
        None => {
            p.add(
                format!("{key}.token_file"),
                "required (or cert_cn for an mTLS client)",
            );
            None
        }
    };
    if c.cert_cn.as_deref().is_some_and(str::is_empty) {
        p.add(format!("{key}.cert_cn"), "must not be empty");
    }
    let access = match &c.access {
        None => AccessSet::ALL,
        Some(list) if list.is_empty() => {
            p.add(
                format!("{key}.access"),
                "must name at least one class (read, write, admin)",
            );
            AccessSet::ALL
        }
        Some(list) => AccessSet::of(list.iter().filter_map(|a| {
            let class = AccessClass::parse(a);
            if class.is_none() {
                p.add(
                    format!("{key}.access"),
                    format!("unknown class {a:?} (read, write, admin)"),
                );
            }
            class
        })),
    };
    if let Some(r) = c.rate {
        if !(r.is_finite() && r > 0.0) {
            p.add(
                format!("{key}.rate"),
                "must be a positive number of requests per second",
            );
        }
    }
    if p.0.len() != before {
        return None;
    }
    Some(Client {
        name: c.name.clone(),
        token,
        token_file: c.token_file.clone(),
        access,
        rate: c.rate,
        cert_cn: c.cert_cn.clone(),
    })
}

/// One token must select exactly one tenant and client.
fn duplicate_tokens(p: &mut Problems, tenants: &BTreeMap<String, Tenant>) {
    let all: Vec<(&str, &Client)> = tenants
        .values()
        .flat_map(|t| t.clients.iter().map(move |c| (t.name.as_str(), c)))
        .collect();
    for (i, (ta, a)) in all.iter().enumerate() {
        for (tb, b) in &all[i + 1..] {
            if a.token.is_some() && a.token == b.token {
                p.add(
                    format!("tenants.{tb}.clients.{}", b.name),
                    format!("same token as tenants.{ta}.clients.{}", a.name),
                );
            }
            if a.cert_cn.is_some() && a.cert_cn == b.cert_cn {
                p.add(
                    format!("tenants.{tb}.clients.{}.cert_cn", b.name),
                    format!("same cert_cn as tenants.{ta}.clients.{}", a.name),
                );
            }
        }
    }
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
