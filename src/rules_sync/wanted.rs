//! What one rule document asks for, before its groups are checked: the
//! ruler namespace, the tenant it names, its Kubernetes namespace (the
//! binding), which ruler (Mimir's or Loki's) and the groups, or why the
//! document is refused.

use super::kind::{RulerKind, RULER_LABEL};
use super::raw::{RawGroup, RawRuleDoc, Scalar};

pub const API_VERSION: &str = "monitoring.coreos.com/v1";
pub const KIND: &str = "PrometheusRule";

/// What one document asks for, before its groups are checked.
pub(super) struct Wanted<'a> {
    pub(super) namespace: String,
    pub(super) tenant: Option<String>,
    /// A PrometheusRule's Kubernetes namespace (its binding); `None` for a
    /// plain file, which is the operator's and may name any tenant.
    pub(super) k8s_namespace: Option<String>,
    /// `spec.groups` or `groups`: where problems point.
    pub(super) at: &'static str,
    pub(super) tenant_key: &'static str,
    pub(super) kind: RulerKind,
    pub(super) groups: &'a [RawGroup],
}

/// The namespace, tenant and groups a document asks for. An error carries
/// the namespace when it is known.
pub(super) fn wanted<'a>(
    doc: &'a RawRuleDoc,
    stem: &str,
    prefix: &str,
    index: usize,
) -> Result<Wanted<'a>, (String, Option<String>)> {
    let resource = doc.kind.is_some()
        || doc.api_version.is_some()
        || doc.metadata.is_some()
        || doc.spec.is_some();
    if !resource {
        let namespace = format!("{prefix}{stem}");
        if index > 0 {
            return Err((
                "a plain rule file holds one document (or use PrometheusRule resources)".into(),
                Some(namespace),
            ));
        }
        let Some(groups) = &doc.groups else {
            return Err(("groups: missing".into(), Some(namespace)));
        };
        let kind =
            ruler_kind(doc.ruler.as_ref(), "ruler").map_err(|e| (e, Some(namespace.clone())))?;
        return Ok(Wanted {
            namespace,
            tenant: doc.tenant.as_ref().map(|t| t.0.clone()),
            k8s_namespace: None,
            at: "groups",
            tenant_key: "tenant",
            kind,
            groups,
        });
    }
    if doc.kind.as_deref() != Some(KIND) || doc.api_version.as_deref() != Some(API_VERSION) {
        return Err((
            format!("apiVersion/kind: expected {API_VERSION} {KIND}"),
            None,
        ));
    }
    let meta = doc.metadata.as_ref();
    let Some(name) = meta
        .and_then(|m| m.name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return Err(("metadata.name: missing".into(), None));
    };
    let k8s_ns = meta
        .and_then(|m| m.namespace.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let namespace = format!("{prefix}{k8s_ns}-{name}");
    if doc.groups.is_some() || doc.tenant.is_some() || doc.ruler.is_some() {
        return Err((
            format!("groups/tenant/ruler: a PrometheusRule has spec.groups, metadata.labels.tenant and metadata.labels[\"{RULER_LABEL}\"]"),
            Some(namespace),
        ));
    }
    let kind = ruler_kind(
        meta.and_then(|m| m.labels.get(RULER_LABEL)),
        &format!("metadata.labels[\"{RULER_LABEL}\"]"),
    )
    .map_err(|e| (e, Some(namespace.clone())))?;
    let Some(spec) = &doc.spec else {
        return Err(("spec.groups: missing".into(), Some(namespace)));
    };
    Ok(Wanted {
        namespace,
        tenant: meta
            .and_then(|m| m.labels.get("tenant"))
            .map(|t| t.0.clone()),
        k8s_namespace: Some(k8s_ns.to_string()),
        at: "spec.groups",
        tenant_key: "metadata.labels.tenant",
        kind,
        groups: &spec.groups,
    })
}

/// The ruler a file names at `key` (Mimir's when it names none).
fn ruler_kind(value: Option<&Scalar>, key: &str) -> Result<RulerKind, String> {
    match value {
        None => Ok(RulerKind::Mimir),
        Some(v) => RulerKind::parse(&v.0)
            .ok_or_else(|| format!("{key}: {:?} is not a ruler (mimir or loki)", v.0)),
    }
}
