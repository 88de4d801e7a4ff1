//! Where a job pushes: a configured upstream (with its credentials) or a
//! URL under `allowed_url_prefixes`, its headers and basic auth, and the
//! grouping labels of a Pushgateway target.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::config::{parse_base_url, read_secret_file, Upstream, DEFAULT_TENANT};
use crate::remote_write::raw::{RawBasicAuth, RawRemoteWrite};
use crate::remote_write::spec::{
    BasicAuth, Delivery, TargetKind, GRAFANA_CLOUD_PUSH_PATH, PROMETHEUS_WRITE_PATH,
};

use super::draft::{Context, Draft, Found, Origin, PasswordFrom};

/// Push timeout for targets that are not a configured upstream.
pub(super) const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) const PUSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[allow(clippy::too_many_arguments)]
pub(super) fn delivery(
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

/// Headers no job may set: identity, routing and framing are the proxy's.
pub(super) const RESERVED_HEADERS: &[&str] = &[
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

pub(super) fn reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-forwarded-")
}

/// A manifest's URL must start with one of `allowed_url_prefixes` when
/// that is set (TOML jobs are the operator's and are not checked).
pub(super) fn url_allowed(url: &str, o: &Origin, raw: &RawRemoteWrite) -> bool {
    match (o, &raw.allowed_url_prefixes) {
        (Origin::Yaml(_), Some(prefixes)) => prefixes.iter().any(|p| url.starts_with(p.as_str())),
        _ => true,
    }
}

/// Why a grafana_cloud target has nowhere to push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum GrafanaCloudError {
    #[error("no tenant named {0:?}")]
    NoTenant(String),
    #[error("tenant {0} has no prometheus upstream configured")]
    NoPrometheus(String),
}

/// The prometheus upstream a grafana_cloud target pushes to: the named
/// tenant's (which must exist), else the job's tenant when one is
/// configured with that name, else the top level.
pub(super) fn grafana_cloud_upstream<'a>(
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

pub(super) fn password(
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

pub(super) fn file_auth(a: &RawBasicAuth, key: &str, found: &mut Found) -> Option<BasicAuth> {
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
pub(super) fn grouping(label: &str, value: &str) -> String {
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
pub(super) fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
