//! Validated remote-write jobs: what a `[[remote_write.jobs]]` entry or a
//! MetricAccess manifest means once every field is checked. Built at config
//! load; the controller compares them across reloads to restart only the
//! jobs that changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::config::Secret;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Added to every pushed series unless `extra_labels` sets it.
pub const MANAGED_BY: (&str, &str) = ("managed_by", "lgtm-proxy");
/// The Prometheus remote-write receiver path; seed 000: always this.
pub const PROMETHEUS_WRITE_PATH: &str = "/api/v1/write";
/// Grafana Cloud's (and Mimir's) push path under the prometheus upstream.
pub const GRAFANA_CLOUD_PUSH_PATH: &str = "/api/prom/push";

/// The whole `[remote_write]` section, validated.
#[derive(Debug, Clone, Default)]
pub struct RemoteWrite {
    pub sources: Vec<String>,
    pub source_auth: Option<BasicAuth>,
    pub manifests_dir: Option<PathBuf>,
    /// A manifest's URL must start with one of these, when set.
    pub allowed_url_prefixes: Option<Vec<String>>,
    pub jobs: Vec<Job>,
    /// Manifests that failed validation (`file: field: problem`); they are
    /// skipped, the others run.
    pub manifest_problems: Vec<String>,
    /// Manifests with `enabled: false` or without a remoteWrite block.
    pub disabled: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    /// Where it is defined: `remote_write.jobs[0]` or a manifest path.
    pub origin: String,
    /// The `tenant` metric label (spec.source, default the namespace).
    pub tenant: String,
    /// One enforced selector per pattern, in order.
    pub selectors: Vec<String>,
    pub interval: Duration,
    /// `extra_labels` plus `managed_by` unless set.
    pub extra_labels: BTreeMap<String, String>,
    pub honor_labels: bool,
    pub target: Delivery,
}

impl Job {
    /// `namespace/name`: unique across all sources of jobs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Prometheus,
    Pushgateway,
    RemoteWrite,
    GrafanaCloud,
}

impl TargetKind {
    pub fn parse(s: &str) -> Option<TargetKind> {
        Some(match s {
            "prometheus" => TargetKind::Prometheus,
            "pushgateway" => TargetKind::Pushgateway,
            "remote_write" => TargetKind::RemoteWrite,
            "grafana_cloud" => TargetKind::GrafanaCloud,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Prometheus => "prometheus",
            TargetKind::Pushgateway => "pushgateway",
            TargetKind::RemoteWrite => "remote_write",
            TargetKind::GrafanaCloud => "grafana_cloud",
        }
    }

    /// Pushgateway takes the text format by PUT; the others remote write.
    pub fn is_remote_write(self) -> bool {
        self != TargetKind::Pushgateway
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// Where and how a job's series are delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub kind: TargetKind,
    /// The full URL requests go to (for pushgateway, with the grouping key).
    pub url: String,
    pub basic_auth: Option<BasicAuth>,
    /// Extra request headers (validated names and values).
    pub headers: Vec<(String, String)>,
    /// grafana_cloud: the tenant's X-Scope-OrgID.
    pub org_id: Option<String>,
    /// grafana_cloud: the upstream's extra CA.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub connect_timeout: Duration,
    /// Until the response headers of one push.
    pub timeout: Duration,
}
