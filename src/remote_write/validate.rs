//! `[remote_write]` and MetricAccess manifests -> `RemoteWrite`. TOML jobs
//! are part of the config: a problem there fails the load like any other
//! key. A manifest with a problem is reported (file and field) and
//! skipped; the other manifests still run.
//! Each part has its own module; this one puts them together.

mod delivery;
mod draft;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::raw::{Manifest, RawJob, RawRemoteWrite};
use super::selector::{enforce_namespace, valid_label_name};
use super::spec::{Job, RemoteWrite, DEFAULT_CLUSTER_DOMAIN, DEFAULT_INTERVAL, MANAGED_BY};
use crate::config::{parse_base_url, DEFAULT_TENANT};
use crate::yaml_dir::{read_documents, yaml_files};
use delivery::{delivery, dns_label, file_auth};
pub use draft::{Context, Found};
use draft::{Draft, Origin, PasswordFrom};

pub const API_VERSION: &str = "observability.ethos.io/v1alpha1";

pub const KIND: &str = "MetricAccess";

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
