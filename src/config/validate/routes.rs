//! Routes: built-in and from the file, prefixes, rewrites, classes and
//! limits.

use crate::access::AccessClass;

use crate::config::base_url::has_dot_segment;
use crate::config::{
    RawConfig, Route, BUILTIN_ROUTES, BUILTIN_UPSTREAMS, DEFAULT_UPGRADE_IDLE_TIMEOUT,
};

use super::problems::{duration, Problems};

pub(super) fn routes(p: &mut Problems, raw: &RawConfig) -> Vec<Route> {
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

pub(super) fn check_prefix(prefix: &str) -> Result<(), &'static str> {
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
