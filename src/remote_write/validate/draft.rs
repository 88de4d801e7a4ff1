//! What validating jobs carries: the config it needs (`Context`), what it
//! found (`Found`), where a job came from (`Origin`), and a job before it
//! is built (`Draft`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{Tenant, Upstream};

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
    pub(super) fn add(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }
}

/// Field names differ between TOML (snake_case under `remote_write.jobs[i]`)
/// and YAML (camelCase under `spec.remoteWrite` in a file).
pub(super) enum Origin<'a> {
    Toml(usize),
    Yaml(&'a str),
}

impl Origin<'_> {
    pub(super) fn key(&self, toml: &str, yaml: &str) -> String {
        match self {
            Origin::Toml(i) if toml.is_empty() => format!("remote_write.jobs[{i}]"),
            Origin::Toml(i) => format!("remote_write.jobs[{i}].{toml}"),
            Origin::Yaml(file) => format!("{file}: {yaml}"),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Origin::Toml(i) => format!("remote_write.jobs[{i}]"),
            Origin::Yaml(file) => file.to_string(),
        }
    }
}

/// One job in a form both sources map onto.
pub(super) struct Draft {
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) metrics: Vec<String>,
    pub(super) source: Option<String>,
    pub(super) interval: Option<String>,
    pub(super) extra_labels: BTreeMap<String, String>,
    pub(super) honor_labels: bool,
    pub(super) kind: String,
    pub(super) url: Option<String>,
    pub(super) service_name: Option<String>,
    pub(super) service_port: Option<u16>,
    pub(super) job_name: Option<String>,
    pub(super) basic_auth: Option<(String, PasswordFrom)>,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) tenant: Option<String>,
}

pub(super) enum PasswordFrom {
    File(PathBuf),
    Secret { name: String, key: String },
}
