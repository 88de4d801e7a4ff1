//! Rules sync as written: the `[rules_sync]` TOML table, and the YAML of a
//! rule file (a PrometheusRule resource or a plain Prometheus rule file
//! with an optional top-level `tenant:` and `ruler:`). Unknown keys are refused where
//! Prometheus refuses them; Kubernetes metadata may hold anything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRulesSync {
    /// PrometheusRule YAMLs or plain rule-group files.
    pub dir: PathBuf,
    /// How often every tenant's ruler is reconciled (files are re-read on
    /// change, with the config).
    pub interval: Option<String>,
    /// Ruler namespaces the proxy owns (creates, updates, deletes).
    pub namespace_prefix: Option<String>,
}

/// One YAML document of a rule file: either shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleDoc {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<RawMetadata>,
    pub spec: Option<RawSpec>,
    /// `kubectl get -o yaml` may print one.
    pub status: Option<IgnoredAny>,
    /// Plain rule files: the tenant whose ruler gets the groups.
    pub tenant: Option<Scalar>,
    /// Plain rule files: `mimir` (the default) or `loki`.
    pub ruler: Option<Scalar>,
    /// Plain rule files: the groups (Prometheus' rule file format).
    pub groups: Option<Vec<RawGroup>>,
}

/// Kubernetes object metadata: only these fields matter, the rest (uid,
/// annotations, managedFields...) is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct RawMetadata {
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    #[serde(default)]
    pub groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    pub interval: Option<String>,
    pub query_offset: Option<String>,
    pub limit: Option<u64>,
    /// Mimir federated rule groups.
    pub source_tenants: Option<Vec<String>>,
    /// Thanos only; accepted in PrometheusRule resources and not sent.
    pub partial_response_strategy: Option<IgnoredAny>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub record: Option<String>,
    pub alert: Option<String>,
    pub expr: Option<Scalar>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub keep_firing_for: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Scalar>,
}

/// A YAML scalar taken as text, as Prometheus reads label values and the
/// PrometheusRule CRD reads `expr` (int or string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            B(bool),
            U(u64),
            I(i64),
            F(f64),
        }
        Ok(Scalar(match Any::deserialize(d)? {
            Any::S(s) => s,
            Any::B(b) => b.to_string(),
            Any::U(n) => n.to_string(),
            Any::I(n) => n.to_string(),
            Any::F(n) => n.to_string(),
        }))
    }
}
