//! Remote-write jobs as written: the `[remote_write]` TOML table and the
//! seeds' `MetricAccess` YAML manifests. Only types are checked here;
//! `validate` turns both into the same `Job`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteWrite {
    /// Infrastructure Prometheus base URLs.
    #[serde(default)]
    pub sources: Vec<String>,
    pub source_basic_auth: Option<RawBasicAuth>,
    pub manifests_dir: Option<PathBuf>,
    pub secrets_dir: Option<PathBuf>,
    pub cluster_domain: Option<String>,
    /// When set, a manifest's `url` must start with one of these.
    pub allowed_url_prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub jobs: Vec<RawJob>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

/// A MetricAccess spec in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: String,
    pub namespace: String,
    pub metrics: Vec<String>,
    pub source: Option<String>,
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    #[serde(default)]
    pub extra_labels: BTreeMap<String, String>,
    pub honor_labels: Option<bool>,
    pub target: RawJobTarget,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub service_name: Option<String>,
    pub service_port: Option<u16>,
    pub job_name: Option<String>,
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// grafana_cloud: the tenant whose prometheus upstream receives.
    pub tenant: Option<String>,
}

// ---- MetricAccess (observability.ethos.io/v1alpha1), as the seeds write it.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ManifestSpec,
}

/// Kubernetes metadata: labels, annotations and the rest are allowed and
/// ignored.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
}

/// Other spec fields (the query side of MetricAccess) are allowed and
/// ignored; the remote-write block is checked strictly.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSpec {
    #[serde(default)]
    pub metrics: Vec<String>,
    pub source: Option<String>,
    pub remote_write: Option<ManifestRemoteWrite>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestRemoteWrite {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub target: ManifestTarget,
    // Seed 001 places the target blocks beside `target`...
    pub prometheus: Option<ServiceBlock>,
    pub pushgateway: Option<ServiceBlock>,
    pub remote_write: Option<ExternalBlock>,
    #[serde(default)]
    pub extra_labels: BTreeMap<String, String>,
    pub honor_labels: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestTarget {
    #[serde(rename = "type")]
    pub kind: String,
    // ...and seed 000 nests them under it.
    pub prometheus: Option<ServiceBlock>,
    pub pushgateway: Option<ServiceBlock>,
    pub remote_write: Option<ExternalBlock>,
    /// grafana_cloud: the tenant whose prometheus upstream receives.
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceBlock {
    pub service_name: Option<String>,
    pub service_port: Option<u16>,
    pub job_name: Option<String>,
    /// Replaces the in-cluster service URL.
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalBlock {
    pub url: String,
    pub basic_auth: Option<ManifestBasicAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestBasicAuth {
    pub username: String,
    pub password_secret: SecretRef,
}

/// A Kubernetes Secret key, read from `<secrets_dir>/<name>/<key>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}
