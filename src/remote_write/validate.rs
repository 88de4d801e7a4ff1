//! `[remote_write]` and MetricAccess manifests -> `RemoteWrite`. TOML jobs
//! are part of the config: a problem there fails the load like any other
//! key. A manifest with a problem is reported (file and field) and
//! skipped; the other manifests still run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::raw::{Manifest, RawBasicAuth, RawJob, RawRemoteWrite};
use super::selector::{enforce_namespace, valid_label_name};
use super::spec::{
    BasicAuth, Delivery, Job, RemoteWrite, TargetKind, DEFAULT_CLUSTER_DOMAIN, DEFAULT_INTERVAL,
    GRAFANA_CLOUD_PUSH_PATH, MANAGED_BY, PROMETHEUS_WRITE_PATH,
};
use crate::config::{parse_base_url, read_secret_file, Tenant, Upstream, DEFAULT_TENANT};
use crate::yaml_dir::{read_documents, yaml_files};

pub const API_VERSION: &str = "observability.ethos.io/v1alpha1";
pub const KIND: &str = "MetricAccess";
/// Push timeout for targets that are not a configured upstream.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);
const PUSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What validation needs from the rest of the config.
pub struct Context<'a> {
    pub upstreams: &'a BTreeMap<String, Upstream>,
    pub tenants: &'a BTreeMap<String, Tenant>,
}

/// Problems (`key: message`) and files read, like the config's own.
#[derive(Default)]
pub struct Found {
    pub problems: Vec<String>,
    pub watched: Vec<PathBuf>,
}

impl Found {
    fn add(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }
}

/// Field names differ between TOML (snake_case under `remote_write.jobs[i]`)
/// and YAML (camelCase under `spec.remoteWrite` in a file).
enum Origin<'a> {
    Toml(usize),
    Yaml(&'a str),
}

impl Origin<'_> {
    fn key(&self, toml: &str, yaml: &str) -> String {
        match self {
            Origin::Toml(i) if toml.is_empty() => format!("remote_write.jobs[{i}]"),
            Origin::Toml(i) => format!("remote_write.jobs[{i}].{toml}"),
            Origin::Yaml(file) => format!("{file}: {yaml}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Origin::Toml(i) => format!("remote_write.jobs[{i}]"),
            Origin::Yaml(file) => file.to_string(),
        }
    }
}

/// One job in a form both sources map onto.
struct Draft {
    name: String,
    namespace: String,
    metrics: Vec<String>,
    source: Option<String>,
    interval: Option<String>,
    extra_labels: BTreeMap<String, String>,
    honor_labels: bool,
    kind: String,
    url: Option<String>,
    service_name: Option<String>,
    service_port: Option<u16>,
    job_name: Option<String>,
    basic_auth: Option<(String, PasswordFrom)>,
    headers: BTreeMap<String, String>,
    tenant: Option<String>,
}

enum PasswordFrom {
    File(PathBuf),
    Secret { name: String, key: String },
}

pub fn validate(raw: &RawRemoteWrite, ctx: &Context, found: &mut Found) -> RemoteWrite {
    let mut sources = Vec::new();
    for (i, s) in raw.sources.iter().enumerate() {
        match parse_base_url(s) {
            Ok((scheme, authority, base)) => sources.push(format!("{scheme}://{authority}{base}")),
            Err(e) => found.add(format!("remote_write.sources[{i}]"), e),
        }
    }
    let source_auth = raw
        .source_basic_auth
        .as_ref()
        .and_then(|a| file_auth(a, "remote_write.source_basic_auth", found));
    let domain = raw
        .cluster_domain
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string());
    if domain.is_empty() || !domain.split('.').all(dns_label) {
        found.add(
            "remote_write.cluster_domain",
            "not a DNS domain like cluster.local",
        );
    }
    let enabled_jobs = raw
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.enabled != Some(false));
    let mut jobs = Vec::new();
    let mut keys = BTreeSet::new();
    for (i, j) in enabled_jobs {
        let origin = Origin::Toml(i);
        if let Some(job) = build(toml_draft(j), &origin, &domain, raw, ctx, found) {
            if !keys.insert(job.key()) {
                found.add(
                    origin.key("name", ""),
                    format!("job {} is defined twice", job.key()),
                );
            }
            jobs.push(job);
        }
    }

    let mut rw = RemoteWrite {
        sources,
        source_auth,
        manifests_dir: raw.manifests_dir.clone(),
        allowed_url_prefixes: raw.allowed_url_prefixes.clone(),
        jobs,
        ..RemoteWrite::default()
    };
    if let Some(dir) = &raw.manifests_dir {
        found.watched.push(dir.clone());
        load_manifests(dir, &domain, raw, ctx, &mut keys, &mut rw, found);
    }
    if (!raw.jobs.is_empty() || !rw.jobs.is_empty()) && raw.sources.is_empty() {
        found.add(
            "remote_write.sources",
            "jobs are defined but no source Prometheus is",
        );
    }
    rw
}

/// Read every `*.yaml` / `*.yml` in `dir` (multi-document files too).
fn load_manifests(
    dir: &Path,
    domain: &str,
    raw: &RawRemoteWrite,
    ctx: &Context,
    keys: &mut BTreeSet<String>,
    rw: &mut RemoteWrite,
    found: &mut Found,
) {
    let files = match yaml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            found.add(
                "remote_write.manifests_dir",
                format!("cannot read {}: {}", dir.display(), e.kind()),
            );
            return;
        }
    };
    for file in files {
        let docs = match read_documents::<serde_yaml_ng::Value>(&file) {
            Ok(d) => d,
            Err(problem) => {
                rw.manifest_problems.push(problem.to_string());
                continue;
            }
        };
        for (label, value) in docs {
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    rw.manifest_problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let m: Manifest = match serde_yaml_ng::from_value(value) {
                Ok(m) => m,
                Err(e) => {
                    rw.manifest_problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            if m.api_version != API_VERSION || m.kind != KIND {
                rw.manifest_problems.push(format!(
                    "{label}: apiVersion/kind: expected {API_VERSION} {KIND}"
                ));
                continue;
            }
            let Some(draft) = yaml_draft(&m) else {
                rw.disabled
                    .push(format!("{}/{}", m.metadata.namespace, m.metadata.name));
                continue;
            };
            let mut local = Found::default();
            let origin = Origin::Yaml(&label);
            let job = build(draft, &origin, domain, raw, ctx, &mut local);
            found.watched.append(&mut local.watched);
            match job {
                Some(job) if local.problems.is_empty() => {
                    if keys.insert(job.key()) {
                        rw.jobs.push(job);
                    } else {
                        rw.manifest_problems.push(format!(
                            "{label}: metadata.name: job {} is defined twice",
                            job.key()
                        ));
                    }
                }
                _ => rw.manifest_problems.append(&mut local.problems),
            }
        }
    }
}

fn toml_draft(j: &RawJob) -> Draft {
    let t = &j.target;
    Draft {
        name: j.name.clone(),
        namespace: j.namespace.clone(),
        metrics: j.metrics.clone(),
        source: j.source.clone(),
        interval: j.interval.clone(),
        extra_labels: j.extra_labels.clone(),
        honor_labels: j.honor_labels.unwrap_or(false),
        kind: t.kind.clone(),
        url: t.url.clone(),
        service_name: t.service_name.clone(),
        service_port: t.service_port,
        job_name: t.job_name.clone(),
        basic_auth: t.basic_auth.as_ref().map(|a| {
            (
                a.username.clone(),
                PasswordFrom::File(a.password_file.clone()),
            )
        }),
        headers: t.headers.clone(),
        tenant: t.tenant.clone(),
    }
}

/// `None` when the manifest has no enabled remote-write block.
fn yaml_draft(m: &Manifest) -> Option<Draft> {
    let rw = m.spec.remote_write.as_ref()?;
    if rw.enabled == Some(false) {
        return None;
    }
    let t = &rw.target;
    let service = match t.kind.as_str() {
        "prometheus" => t.prometheus.as_ref().or(rw.prometheus.as_ref()),
        "pushgateway" => t.pushgateway.as_ref().or(rw.pushgateway.as_ref()),
        _ => None,
    };
    let external = t.remote_write.as_ref().or(rw.remote_write.as_ref());
    let external = external.filter(|_| t.kind == "remote_write");
    Some(Draft {
        name: m.metadata.name.clone(),
        namespace: m.metadata.namespace.clone(),
        metrics: m.spec.metrics.clone(),
        source: m.spec.source.clone(),
        interval: rw.interval.clone(),
        extra_labels: rw.extra_labels.clone(),
        honor_labels: rw.honor_labels.unwrap_or(false),
        kind: t.kind.clone(),
        url: service
            .and_then(|s| s.url.clone())
            .or_else(|| external.map(|e| e.url.clone())),
        service_name: service.and_then(|s| s.service_name.clone()),
        service_port: service.and_then(|s| s.service_port),
        job_name: service.and_then(|s| s.job_name.clone()),
        basic_auth: external.and_then(|e| e.basic_auth.as_ref()).map(|a| {
            (
                a.username.clone(),
                PasswordFrom::Secret {
                    name: a.password_secret.name.clone(),
                    key: a.password_secret.key.clone(),
                },
            )
        }),
        headers: external.map(|e| e.headers.clone()).unwrap_or_default(),
        tenant: t.tenant.clone(),
    })
}

fn build(
    d: Draft,
    o: &Origin,
    domain: &str,
    raw: &RawRemoteWrite,
    ctx: &Context,
    found: &mut Found,
) -> Option<Job> {
    let before = found.problems.len();
    if !dns_label(&d.namespace) {
        found.add(
            o.key("namespace", "metadata.namespace"),
            "not a Kubernetes namespace name",
        );
    }
    if d.name.is_empty() {
        found.add(o.key("name", "metadata.name"), "is empty");
    }
    if d.metrics.is_empty() {
        found.add(o.key("metrics", "spec.metrics"), "lists no metric pattern");
    }
    let mut selectors = Vec::new();
    for (i, pattern) in d.metrics.iter().enumerate() {
        match enforce_namespace(pattern, &d.namespace) {
            Ok(s) => selectors.push(s),
            Err(e) => found.add(
                o.key(&format!("metrics[{i}]"), &format!("spec.metrics[{i}]")),
                e,
            ),
        }
    }
    let interval = match &d.interval {
        None => DEFAULT_INTERVAL,
        Some(text) => match humantime::parse_duration(text.trim()) {
            Ok(i) if i >= Duration::from_secs(1) => i,
            Ok(_) => {
                found.add(
                    o.key("interval", "spec.remoteWrite.interval"),
                    "must be at least 1s",
                );
                DEFAULT_INTERVAL
            }
            Err(_) => {
                found.add(
                    o.key("interval", "spec.remoteWrite.interval"),
                    "not a duration like \"30s\"",
                );
                DEFAULT_INTERVAL
            }
        },
    };
    let mut extra_labels = BTreeMap::new();
    for (k, v) in &d.extra_labels {
        if !valid_label_name(k) || k.starts_with("__") {
            found.add(
                o.key("extra_labels", "spec.remoteWrite.extraLabels"),
                format!("{k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"),
            );
        } else {
            extra_labels.insert(k.clone(), v.clone());
        }
    }
    extra_labels
        .entry(MANAGED_BY.0.to_string())
        .or_insert_with(|| MANAGED_BY.1.to_string());
    let tenant = d.source.clone().unwrap_or_else(|| d.namespace.clone());
    if tenant.is_empty() {
        found.add(o.key("source", "spec.source"), "is empty");
    }
    // A manifest is a team's: it acts only for a tenant its namespace may
    // act for. TOML jobs are the operator's and may name any tenant.
    let acting = match o {
        Origin::Toml(_) => None,
        Origin::Yaml(_) => bound_tenant(&d, o, ctx, found),
    };
    let target = delivery(&d, o, domain, &tenant, acting.as_deref(), raw, ctx, found);
    if found.problems.len() != before {
        return None;
    }
    Some(Job {
        origin: o.describe(),
        namespace: d.namespace,
        name: d.name,
        tenant,
        selectors,
        interval,
        extra_labels,
        honor_labels: d.honor_labels,
        target: target?,
    })
}

/// The tenant a manifest acts for (see `tenant::acting_tenant`): named by
/// `target.tenant`, or by `spec.source` when that is a tenant's key. A
/// `spec.source` naming another tenant than the one acted for is refused.
fn bound_tenant(d: &Draft, o: &Origin, ctx: &Context, found: &mut Found) -> Option<String> {
    let is_tenant = |t: &str| t == DEFAULT_TENANT || ctx.tenants.contains_key(t);
    let source_tenant = d.source.as_deref().filter(|s| is_tenant(s));
    let (named, key) = match (&d.tenant, source_tenant) {
        (Some(t), _) => (
            Some(t.as_str()),
            o.key("", "spec.remoteWrite.target.tenant"),
        ),
        (None, Some(s)) => (Some(s), o.key("", "spec.source")),
        (None, None) => (None, o.key("", "metadata.namespace")),
    };
    match crate::tenant::acting_tenant(&d.namespace, named, ctx.tenants) {
        Err(e) => {
            found.add(key, e);
            None
        }
        Ok(acting) => {
            if let Some(s) = source_tenant.filter(|s| *s != acting) {
                found.add(
                    o.key("", "spec.source"),
                    format!("names tenant {s:?}, but this manifest acts for {acting}"),
                );
                return None;
            }
            Some(acting)
        }
    }
}

/// Headers no job may set: identity, routing and framing are the proxy's.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "x-scope-orgid",
    "cookie",
    "forwarded",
    "via",
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
];

fn reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-forwarded-")
}

/// A manifest's URL must start with one of `allowed_url_prefixes` when
/// that is set (TOML jobs are the operator's and are not checked).
fn url_allowed(url: &str, o: &Origin, raw: &RawRemoteWrite) -> bool {
    match (o, &raw.allowed_url_prefixes) {
        (Origin::Yaml(_), Some(prefixes)) => prefixes.iter().any(|p| url.starts_with(p.as_str())),
        _ => true,
    }
}

#[allow(clippy::too_many_arguments)]
fn delivery(
    d: &Draft,
    o: &Origin,
    domain: &str,
    job_tenant: &str,
    acting: Option<&str>,
    raw: &RawRemoteWrite,
    ctx: &Context,
    found: &mut Found,
) -> Option<Delivery> {
    let type_key = o.key("target.type", "spec.remoteWrite.target.type");
    let Some(kind) = TargetKind::parse(&d.kind) else {
        found.add(
            type_key,
            "must be prometheus, pushgateway, remote_write or grafana_cloud",
        );
        return None;
    };
    let block = match kind {
        TargetKind::Prometheus => "prometheus",
        TargetKind::Pushgateway => "pushgateway",
        _ => "remoteWrite",
    };
    let field = |toml: &str, yaml: &str| {
        o.key(
            &format!("target.{toml}"),
            &format!("spec.remoteWrite.{block}.{yaml}"),
        )
    };
    let mut delivery = Delivery {
        kind,
        url: String::new(),
        basic_auth: None,
        headers: Vec::new(),
        org_id: None,
        ca: None,
        connect_timeout: PUSH_CONNECT_TIMEOUT,
        timeout: PUSH_TIMEOUT,
    };
    let base = |found: &mut Found| -> Option<String> {
        if let Some(url) = &d.url {
            return match parse_base_url(url) {
                Ok((s, a, p)) => {
                    let url = format!("{s}://{a}{p}");
                    if !url_allowed(&url, o, raw) {
                        found.add(
                            field("url", "url"),
                            "is outside remote_write.allowed_url_prefixes",
                        );
                        return None;
                    }
                    Some(url)
                }
                Err(e) => {
                    found.add(field("url", "url"), e);
                    None
                }
            };
        }
        let name = d.service_name.as_deref().unwrap_or("");
        if !dns_label(name) {
            found.add(
                field("service_name", "serviceName"),
                "missing or not a Kubernetes service name (or set url)",
            );
            return None;
        }
        let Some(port) = d.service_port.filter(|p| *p > 0) else {
            found.add(field("service_port", "servicePort"), "missing (or set url)");
            return None;
        };
        Some(format!("http://{name}.{}.svc.{domain}:{port}", d.namespace))
    };
    match kind {
        TargetKind::Prometheus => {
            let b = base(found)?;
            delivery.url = if b.ends_with(PROMETHEUS_WRITE_PATH) {
                b
            } else {
                format!("{b}{PROMETHEUS_WRITE_PATH}")
            };
        }
        TargetKind::Pushgateway => {
            let b = base(found)?;
            let Some(job) = d.job_name.as_deref().filter(|j| !j.is_empty()) else {
                found.add(field("job_name", "jobName"), "missing");
                return None;
            };
            delivery.url = format!(
                "{b}/metrics/{}/{}",
                grouping("job", job),
                grouping("namespace", &d.namespace)
            );
        }
        TargetKind::RemoteWrite => {
            let Some(url) = &d.url else {
                found.add(field("url", "url"), "missing");
                return None;
            };
            match parse_base_url(url) {
                Ok((s, a, p)) => delivery.url = format!("{s}://{a}{p}"),
                Err(e) => found.add(field("url", "url"), e),
            }
            if !delivery.url.is_empty() && !url_allowed(&delivery.url, o, raw) {
                found.add(
                    field("url", "url"),
                    "is outside remote_write.allowed_url_prefixes",
                );
                return None;
            }
            if let Some((username, from)) = &d.basic_auth {
                delivery.basic_auth = password(username, from, &d.namespace, raw, o, found);
            }
            for (k, v) in &d.headers {
                let ok = HeaderName::from_bytes(k.as_bytes()).is_ok()
                    && HeaderValue::from_str(v).is_ok();
                if !ok || reserved_header(k) {
                    found.add(
                        field("headers", "headers"),
                        format!("{k:?} is not a header this target may set"),
                    );
                } else {
                    delivery.headers.push((k.clone(), v.clone()));
                }
            }
        }
        TargetKind::GrafanaCloud => {
            let key = o.key("target.tenant", "spec.remoteWrite.target.tenant");
            // A manifest pushes with its bound tenant's credentials only.
            let explicit = acting.or(d.tenant.as_deref());
            let up = grafana_cloud_upstream(explicit, job_tenant, ctx)
                .map_err(|e| found.add(key, e))
                .ok()?;
            delivery.url = format!("{}{GRAFANA_CLOUD_PUSH_PATH}", up.url());
            delivery.basic_auth = up.credentials.as_ref().map(|c| BasicAuth {
                username: c.user.clone(),
                password: c.token.clone(),
            });
            delivery.org_id = up.tenant.clone();
            delivery.ca = up.ca.as_ref().map(|c| c.certs.clone());
            delivery.connect_timeout = up.connect_timeout;
            delivery.timeout = up.timeout;
        }
    }
    Some(delivery)
}

/// Why a grafana_cloud target has nowhere to push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum GrafanaCloudError {
    #[error("no tenant named {0:?}")]
    NoTenant(String),
    #[error("tenant {0} has no prometheus upstream configured")]
    NoPrometheus(String),
}

/// The prometheus upstream a grafana_cloud target pushes to: the named
/// tenant's (which must exist), else the job's tenant when one is
/// configured with that name, else the top level.
fn grafana_cloud_upstream<'a>(
    explicit: Option<&str>,
    job_tenant: &str,
    ctx: &'a Context,
) -> Result<&'a Upstream, GrafanaCloudError> {
    let (name, ups) = match explicit {
        Some(DEFAULT_TENANT) => (DEFAULT_TENANT, ctx.upstreams),
        Some(t) => match ctx.tenants.get(t) {
            Some(tenant) => (t, &tenant.upstreams),
            None => return Err(GrafanaCloudError::NoTenant(t.to_string())),
        },
        None => match ctx.tenants.get(job_tenant) {
            Some(tenant) => (job_tenant, &tenant.upstreams),
            None => (DEFAULT_TENANT, ctx.upstreams),
        },
    };
    ups.get("prometheus")
        .ok_or_else(|| GrafanaCloudError::NoPrometheus(name.to_string()))
}

fn password(
    username: &str,
    from: &PasswordFrom,
    namespace: &str,
    raw: &RawRemoteWrite,
    o: &Origin,
    found: &mut Found,
) -> Option<BasicAuth> {
    let (key, path) = match from {
        PasswordFrom::File(p) => (o.key("target.basic_auth.password_file", ""), p.clone()),
        PasswordFrom::Secret { name, key } => {
            let k = o.key("", "spec.remoteWrite.remoteWrite.basicAuth.passwordSecret");
            let Some(dir) = &raw.secrets_dir else {
                found.add(
                    k,
                    "needs remote_write.secrets_dir (where Secrets are mounted)",
                );
                return None;
            };
            if [name, key]
                .iter()
                .any(|s| s.is_empty() || s.contains('/') || s.starts_with('.'))
            {
                found.add(k, "name and key must be plain file names");
                return None;
            }
            // Kubernetes Secrets are namespaced: a manifest reads only its
            // own namespace's (`<secrets_dir>/<namespace>/<name>/<key>`).
            (k, dir.join(namespace).join(name).join(key))
        }
    };
    found.watched.push(path.clone());
    match read_secret_file(&path) {
        Ok(password) => Some(BasicAuth {
            username: username.to_string(),
            password,
        }),
        Err(e) => {
            found.add(key, e);
            None
        }
    }
}

fn file_auth(a: &RawBasicAuth, key: &str, found: &mut Found) -> Option<BasicAuth> {
    found.watched.push(a.password_file.clone());
    match read_secret_file(&a.password_file) {
        Ok(password) => Some(BasicAuth {
            username: a.username.clone(),
            password,
        }),
        Err(e) => {
            found.add(format!("{key}.password_file"), e);
            None
        }
    }
}

/// A Pushgateway grouping-key path element; values a path cannot carry use
/// the `@base64` form.
fn grouping(label: &str, value: &str) -> String {
    use base64::Engine as _;
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        format!("{label}/{value}")
    } else {
        let enc = base64::engine::general_purpose::URL_SAFE.encode(value);
        format!(
            "{label}@base64/{}",
            if enc.is_empty() { "=".into() } else { enc }
        )
    }
}

/// A DNS-1123 label: what Kubernetes namespace and service names are.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
