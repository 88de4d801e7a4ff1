//! `check-config` output: the effective config as TOML, secrets redacted.

use serde::Serialize;

use std::collections::BTreeMap;

use super::{Config, LogFormat, Upstream, REDACTED};

#[derive(Serialize)]
struct Effective<'a> {
    listen: String,
    shutdown_delay: String,
    shutdown_grace: String,
    header_read_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_listen: Option<String>,
    via_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<usize>,
    log: &'a str,
    log_format: &'static str,
    require_client_auth: bool,
    watch_interval: String,
    upstreams: BTreeMap<&'a str, EffectiveUpstream<'a>>,
    routes: Vec<EffectiveRoute<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tenants: BTreeMap<&'a str, EffectiveTenant<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<EffectiveTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_write: Option<EffectiveRemoteWrite<'a>>,
    rules_sync: Option<EffectiveRulesSync<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes_auth: Option<EffectiveKubernetesAuth<'a>>,
}

#[derive(Serialize)]
struct EffectiveKubernetesAuth<'a> {
    issuer: &'a str,
    audiences: &'a [String],
    /// `discovery`, or the JWKS file's path.
    keys: String,
}

#[derive(Serialize)]
struct EffectiveRulesSync<'a> {
    dir: String,
    interval: String,
    namespace_prefix: &'a str,
    rulers: Vec<EffectiveRuler<'a>>,
}

#[derive(Serialize)]
struct EffectiveRuler<'a> {
    tenants: &'a [String],
    url: String,
    /// Ruler namespace -> its group names.
    namespaces: BTreeMap<&'a str, Vec<&'a str>>,
}

#[derive(Serialize)]
struct EffectiveRemoteWrite<'a> {
    sources: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    source_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifests_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_url_prefixes: Option<&'a [String]>,
    jobs: Vec<EffectiveJob<'a>>,
}

#[derive(Serialize)]
struct EffectiveJob<'a> {
    namespace: &'a str,
    name: &'a str,
    origin: &'a str,
    tenant: &'a str,
    /// The selectors queried, namespace enforced.
    selectors: &'a [String],
    interval: String,
    honor_labels: bool,
    extra_labels: &'a BTreeMap<String, String>,
    target_type: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
}

#[derive(Serialize)]
struct EffectiveTls {
    cert_file: String,
    key_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ca_file: Option<String>,
}

#[derive(Serialize)]
struct EffectiveTenant<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    namespaces: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    client_tokens_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<usize>,
    upstreams: BTreeMap<&'a str, EffectiveUpstream<'a>>,
    clients: Vec<EffectiveClient<'a>>,
}

#[derive(Serialize)]
struct EffectiveClient<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_cn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account: Option<String>,
    access: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
}

#[derive(Serialize)]
struct EffectiveUpstream<'a> {
    url: String,
    basic_auth: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'static str>,
    /// `""`: no X-Scope-OrgID is sent.
    tenant: &'a str,
    timeout: String,
    connect_timeout: String,
    max_connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

#[derive(Serialize)]
struct EffectiveRoute<'a> {
    prefix: &'a str,
    upstream: &'a str,
    rewrite: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'static str>,
    upgrade_idle_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<u64>,
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn upstreams(ups: &BTreeMap<String, Upstream>) -> BTreeMap<&str, EffectiveUpstream<'_>> {
    ups.iter()
        .map(|(name, u)| {
            (
                name.as_str(),
                EffectiveUpstream {
                    url: u.url(),
                    basic_auth: u.credentials.is_some(),
                    user: u.credentials.as_ref().map(|c| c.user.as_str()),
                    token: u.credentials.as_ref().map(|_| REDACTED),
                    tenant: u.tenant.as_deref().unwrap_or(""),
                    timeout: human(u.timeout),
                    connect_timeout: human(u.connect_timeout),
                    max_connections: u.max_connections,
                    ca_file: u.ca.as_ref().map(|ca| ca.path.display().to_string()),
                },
            )
        })
        .collect()
}

/// What `check-config` warns about without failing: settings that are valid
/// but almost certainly not what was meant.
pub fn config_warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let has_clients = c
        .tenants
        .values()
        .any(|t| !t.clients.is_empty() || t.client_tokens_file.is_some());
    if !c.require_client_auth && has_clients {
        out.push(
            "require_client_auth = false while tenants have clients: anyone who names a tenant in X-Scope-OrgID gets its identity and credentials".to_string(),
        );
    }
    out
}

/// Render the effective config. Tokens appear only as `<redacted>`.
pub fn render_effective(c: &Config) -> String {
    let eff = Effective {
        listen: c.startup.listen.to_string(),
        shutdown_delay: human(c.startup.shutdown_delay),
        shutdown_grace: human(c.startup.shutdown_grace),
        header_read_timeout: human(c.header_read_timeout),
        admin_listen: c.startup.admin_listen.map(|a| a.to_string()),
        via_name: &c.via_name,
        max_connections: c.max_connections,
        max_in_flight: c.max_in_flight,
        log: &c.startup.log,
        log_format: match c.startup.log_format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        },
        require_client_auth: c.require_client_auth,
        watch_interval: human(c.watch_interval),
        upstreams: upstreams(&c.upstreams),
        routes: c
            .routes
            .iter()
            .map(|r| EffectiveRoute {
                prefix: &r.prefix,
                upstream: &r.upstream,
                rewrite: &r.rewrite,
                class: r.class.map(|c| c.as_str()),
                upgrade_idle_timeout: human(r.upgrade_idle_timeout),
                max_body_bytes: r.max_body_bytes,
            })
            .collect(),
        tenants: c
            .tenants
            .iter()
            .map(|(name, t)| {
                (
                    name.as_str(),
                    EffectiveTenant {
                        namespaces: &t.namespaces,
                        client_tokens_file: t
                            .client_tokens_file
                            .as_ref()
                            .map(|p| p.display().to_string()),
                        max_in_flight: t.max_in_flight,
                        upstreams: upstreams(&t.upstreams),
                        // Clients from client_tokens_file are that file's lines.
                        clients: t
                            .clients
                            .iter()
                            .filter(|cl| {
                                cl.token_file.is_some()
                                    || cl.cert_cn.is_some()
                                    || cl.service_account.is_some()
                            })
                            .map(|cl| EffectiveClient {
                                name: &cl.name,
                                token_file: cl.token_file.as_ref().map(|p| p.display().to_string()),
                                cert_cn: cl.cert_cn.as_deref(),
                                service_account: cl
                                    .service_account
                                    .as_ref()
                                    .map(ToString::to_string),
                                access: cl.access.classes().map(|a| a.as_str()).collect(),
                                rate: cl.rate,
                            })
                            .collect(),
                    },
                )
            })
            .collect(),
        tls: c.tls.as_ref().map(|t| EffectiveTls {
            cert_file: t.cert_file.display().to_string(),
            key_file: t.key_file.display().to_string(),
            client_ca_file: t.client_ca_file.as_ref().map(|p| p.display().to_string()),
        }),
        remote_write: c.remote_write.as_ref().map(|rw| EffectiveRemoteWrite {
            sources: &rw.sources,
            source_user: rw.source_auth.as_ref().map(|a| a.username.as_str()),
            manifests_dir: rw.manifests_dir.as_ref().map(|p| p.display().to_string()),
            allowed_url_prefixes: rw.allowed_url_prefixes.as_deref(),
            jobs: rw
                .jobs
                .iter()
                .map(|j| EffectiveJob {
                    namespace: &j.namespace,
                    name: &j.name,
                    origin: &j.origin,
                    tenant: &j.tenant,
                    selectors: &j.selectors,
                    interval: human(j.interval),
                    honor_labels: j.honor_labels,
                    extra_labels: &j.extra_labels,
                    target_type: j.target.kind.as_str(),
                    url: &j.target.url,
                    user: j.target.basic_auth.as_ref().map(|a| a.username.as_str()),
                    password: j.target.basic_auth.as_ref().map(|_| REDACTED),
                })
                .collect(),
        }),
        rules_sync: c.rules_sync.as_ref().map(|rs| EffectiveRulesSync {
            dir: rs.dir.display().to_string(),
            interval: human(rs.interval),
            namespace_prefix: &rs.prefix,
            rulers: rs
                .rulers
                .iter()
                .map(|r| EffectiveRuler {
                    tenants: &r.tenants,
                    url: r.upstream.url(),
                    namespaces: r
                        .namespaces
                        .iter()
                        .map(|(ns, gs)| (ns.as_str(), gs.iter().map(|g| g.name.as_str()).collect()))
                        .collect(),
                })
                .collect(),
        }),
        kubernetes_auth: c.kubernetes_auth.as_ref().map(|k| EffectiveKubernetesAuth {
            issuer: &k.issuer,
            audiences: &k.audiences,
            keys: match &k.keys {
                crate::kubernetes_auth::spec::KeySource::File { path, .. } => {
                    path.display().to_string()
                }
                crate::kubernetes_auth::spec::KeySource::Discovery { .. } => {
                    "discovery".to_string()
                }
            },
        }),
    };
    toml::to_string(&eff).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}
