//! Raw config -> typed `Config`, collecting every problem (`key: message`).
//! Token files are read here, at load time, before the runtime starts.
//! Each section has its own module; this one puts them together.

mod kubernetes_auth;
mod problems;
mod routes;
mod tenants;
mod upstreams;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{
    Config, ConfigErrors, DynamicConfig, LogFormat, RawConfig, StartupConfig,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_DELAY, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_VIA_NAME, DEFAULT_WATCH_INTERVAL,
};

use problems::{duration, positive, secret, Previous, Problems};
use routes::routes;
use tenants::tenants;
use upstreams::{points_at, upstream, valid_upstream_name};

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
    let kubernetes_auth =
        kubernetes_auth::kubernetes_auth(&mut p, raw.kubernetes_auth.as_ref(), &tenants);
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
                    kubernetes_auth,
                },
            },
            warnings,
        ))
    } else {
        Err(ConfigErrors(p.0))
    }
}

#[cfg(test)]
mod tests;
