//! Upstreams: names, URLs, credentials, timeouts, CA files, and the
//! check that none points at the proxy itself.

use std::net::SocketAddr;
use std::path::Path;

use http::uri::Scheme;
use rustls::pki_types::CertificateDer;

use crate::config::base_url::parse_base_url;
use crate::config::{
    CaFile, Credentials, RawUpstream, Secret, Upstream, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_TIMEOUT, DEFAULT_UPSTREAM_MAX_CONNECTIONS,
};

use super::problems::{duration, secret, Problems};

pub(super) const RESERVED_UPSTREAM_NAMES: &[&str] =
    &["token", "log", "shutdown", "listen", "config"];

pub(super) fn valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !RESERVED_UPSTREAM_NAMES.contains(&name)
}

pub(super) fn upstream(
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
pub(super) fn read_ca_file(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, crate::config::tls::CertError> {
    let certs = crate::config::tls::read_certs(path)?;
    crate::config::tls::root_store(path, &certs)?;
    Ok(certs)
}

/// The upstream's URL names `listen` itself: the same port on a loopback
/// address (`localhost` included) or on `listen`'s own address. (A Service
/// name that resolves back here is caught at run time by `Via`.)
pub(super) fn points_at(u: &Upstream, listen: SocketAddr) -> bool {
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
