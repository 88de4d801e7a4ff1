//! Tenants and their clients: names, namespaces, inherited upstreams,
//! client credentials (tokens unique across tenants), access and rates.

use std::collections::BTreeMap;

use crate::access::{AccessClass, AccessSet};

use crate::config::{
    read_secret_file, read_small_file, Client, RawClient, RawConfig, RawTenant, RawUpstream,
    Secret, Tenant, DEFAULT_TENANT,
};

use super::problems::Problems;
use super::upstreams::{upstream, valid_upstream_name};

/// Tenant names end up in X-Scope-OrgID (client-sent), metric labels and
/// logs: no `|` (Loki joins OrgIDs with it), no whitespace, no `default`.
pub(super) fn valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 150
        && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name != DEFAULT_TENANT
}

pub(super) fn tenants(
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
pub(super) fn namespaces(p: &mut Problems, key: &str, list: &[String]) -> Vec<String> {
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
pub(super) fn inherit(own: &RawUpstream, top: Option<&RawUpstream>, tenant: &str) -> RawUpstream {
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

pub(super) fn clients(p: &mut Problems, key: &str, t: &RawTenant) -> Vec<Client> {
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
                        service_account: None,
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

pub(super) fn client(p: &mut Problems, key: &str, c: &RawClient) -> Option<Client> {
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
        None if c.cert_cn.is_some() || c.service_account.is_some() => None,
        None => {
            p.add(
                format!("{key}.token_file"),
                "required (or cert_cn for an mTLS client, or service_account)",
            );
            None
        }
    };
    if c.cert_cn.as_deref().is_some_and(str::is_empty) {
        p.add(format!("{key}.cert_cn"), "must not be empty");
    }
    let service_account = c.service_account.as_deref().and_then(|s| {
        let pattern = crate::kubernetes_auth::spec::AccountPattern::parse(s);
        if pattern.is_none() {
            p.add(
                format!("{key}.service_account"),
                format!("{s:?} is not namespace/name or namespace/* (Kubernetes names)"),
            );
        }
        pattern
    });
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
        service_account,
    })
}

/// One token must select exactly one tenant and client.
pub(super) fn duplicate_tokens(p: &mut Problems, tenants: &BTreeMap<String, Tenant>) {
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
            if a.service_account.is_some() && a.service_account == b.service_account {
                p.add(
                    format!("tenants.{tb}.clients.{}.service_account", b.name),
                    format!("same service_account as tenants.{ta}.clients.{}", a.name),
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
