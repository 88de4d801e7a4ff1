//! `[rules_sync]` at config load: the rulers (one per distinct tenant
//! stack), and the rule files of `dir` checked and assigned to them. A bad
//! file is skipped and reported by file and field while the others load;
//! its ruler namespace is kept from deletion until it is fixed, and a file
//! too broken to tell its namespace holds every deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::group::{check_group, check_unique_names, Group};
use super::kind::RulerKind;
use super::raw::{RawRuleDoc, RawRulesSync};
use super::wanted::wanted;
use crate::config::{Tenant, Upstream, DEFAULT_TENANT};
use crate::yaml_dir::{read_documents, yaml_files};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_PREFIX: &str = "lgtm-";
pub use super::wanted::{API_VERSION, KIND};

/// The validated `[rules_sync]`, files included.
#[derive(Debug, Clone)]
pub struct RulesSync {
    pub dir: PathBuf,
    pub interval: Duration,
    pub prefix: String,
    pub rulers: Vec<RulerTarget>,
    /// Skipped rule files, `file: field: message` (serve runs without them;
    /// `check-config` and `rules-sync` fail on them).
    pub problems: Vec<String>,
    /// Ruler namespaces of skipped files: not deleted from meanwhile.
    pub keep: BTreeSet<String>,
    /// A file whose namespace could not be told: no deletions at all.
    pub hold_deletes: Option<String>,
    pub files: usize,
}

/// One ruler and what it should hold under the prefix.
#[derive(Debug, Clone)]
pub struct RulerTarget {
    /// The tenants whose prometheus (or loki) upstream is this ruler
    /// (usually one).
    pub tenants: Vec<String>,
    pub kind: RulerKind,
    pub upstream: Upstream,
    /// Ruler namespace -> groups, in file order.
    pub namespaces: BTreeMap<String, Vec<Group>>,
}

impl RulerTarget {
    /// The `tenant` label of its metrics and logs.
    pub fn label(&self) -> String {
        self.tenants.join("+")
    }

    /// Its key in /health: the tenant label, with `/loki` for Loki's.
    pub fn status_key(&self) -> String {
        match self.kind {
            RulerKind::Mimir => self.label(),
            RulerKind::Loki => format!("{}/loki", self.label()),
        }
    }

    pub fn group_count(&self) -> usize {
        self.namespaces.values().map(Vec::len).sum()
    }
}

/// Build the rulers and load the files. `problems` gets the config's own
/// (key: message); file problems go into the result.
pub fn validate(
    raw: &RawRulesSync,
    interval: Duration,
    upstreams: &BTreeMap<String, Upstream>,
    tenants: &BTreeMap<String, Tenant>,
    problems: &mut Vec<String>,
) -> RulesSync {
    let prefix = raw
        .namespace_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        problems.push(
            "rules_sync.namespace_prefix: must be non-empty letters, digits, '-', '_' or '.' (it marks the ruler namespaces the proxy owns)"
                .to_string(),
        );
    }
    let (rulers, by_tenant) = rulers(upstreams, tenants);
    if rulers.is_empty() {
        problems.push(
            "rules_sync: no tenant has a prometheus or loki upstream (rules are synced to their rulers)"
                .to_string(),
        );
    }
    let mut rs = RulesSync {
        dir: raw.dir.clone(),
        interval,
        prefix,
        rulers,
        problems: Vec::new(),
        keep: BTreeSet::new(),
        hold_deletes: None,
        files: 0,
    };
    match yaml_files(&raw.dir) {
        Ok(files) => {
            rs.files = files.len();
            let mut owner = BTreeMap::new();
            for f in files {
                load_file(&f, tenants, &by_tenant, &mut owner, &mut rs);
            }
            // A namespace that a refused file also claims is not written
            // either, whichever file came first.
            for (r, ruler) in rs.rulers.iter_mut().enumerate() {
                let contested: Vec<String> = ruler
                    .namespaces
                    .keys()
                    .filter(|ns| rs.keep.contains(*ns))
                    .cloned()
                    .collect();
                for ns in contested {
                    ruler.namespaces.remove(&ns);
                    if let Some(label) = owner.get(&(r, ns.clone())) {
                        rs.problems.push(format!(
                            "{label}: ruler namespace {ns} is also claimed by a refused file; not applied until that is fixed or gone"
                        ));
                    }
                }
            }
        }
        Err(e) => problems.push(format!(
            "rules_sync.dir: cannot read {}: {}",
            raw.dir.display(),
            e.kind()
        )),
    }
    rs
}

/// Which ruler a tenant's files of one kind go to.
type ByTenant = BTreeMap<(String, RulerKind), usize>;

/// Distinct rulers, Mimir's and Loki's: tenants whose prometheus (or loki)
/// upstream is the same URL, user and org ID share one (so no tenant
/// deletes another's groups).
fn rulers(
    upstreams: &BTreeMap<String, Upstream>,
    tenants: &BTreeMap<String, Tenant>,
) -> (Vec<RulerTarget>, ByTenant) {
    let mut rulers: Vec<RulerTarget> = Vec::new();
    let mut by_tenant = BTreeMap::new();
    let all = std::iter::once((DEFAULT_TENANT, upstreams))
        .chain(tenants.iter().map(|(n, t)| (n.as_str(), &t.upstreams)));
    let all = RulerKind::ALL
        .into_iter()
        .flat_map(|kind| all.clone().map(move |(name, ups)| (kind, name, ups)));
    for (kind, name, ups) in all {
        let Some(up) = ups.get(kind.upstream()) else {
            continue;
        };
        let same = |r: &RulerTarget| {
            r.kind == kind
                && r.upstream.url() == up.url()
                && r.upstream.tenant == up.tenant
                && r.upstream.credentials.as_ref().map(|c| &c.user)
                    == up.credentials.as_ref().map(|c| &c.user)
        };
        let i = match rulers.iter().position(same) {
            Some(i) => {
                rulers[i].tenants.push(name.to_string());
                i
            }
            None => {
                rulers.push(RulerTarget {
                    tenants: vec![name.to_string()],
                    kind,
                    upstream: up.clone(),
                    namespaces: BTreeMap::new(),
                });
                rulers.len() - 1
            }
        };
        by_tenant.insert((name.to_string(), kind), i);
    }
    (rulers, by_tenant)
}

fn load_file(
    path: &Path,
    tenants: &BTreeMap<String, Tenant>,
    by_tenant: &ByTenant,
    owner: &mut BTreeMap<(usize, String), String>,
    rs: &mut RulesSync,
) {
    let docs = match read_documents::<RawRuleDoc>(path) {
        Ok(d) => d,
        Err(problem) => {
            rs.problems.push(problem.to_string());
            rs.hold_deletes.get_or_insert(path.display().to_string());
            return;
        }
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    for (n, (label, doc)) in docs.iter().enumerate() {
        let label = label.clone();
        let doc = match doc {
            Ok(d) => d,
            Err(e) => {
                rs.problems.push(format!("{label}: {e}"));
                rs.hold_deletes.get_or_insert(label);
                continue;
            }
        };
        let wanted = match wanted(doc, &stem, &rs.prefix, n) {
            Ok(w) => w,
            Err((msg, namespace)) => {
                rs.problems.push(format!("{label}: {msg}"));
                match namespace {
                    Some(ns) => {
                        rs.keep.insert(ns);
                    }
                    None => {
                        rs.hold_deletes.get_or_insert(label);
                    }
                }
                continue;
            }
        };
        let mut found = Vec::new();
        // A PrometheusRule acts only for a tenant its namespace may act for.
        let bound = match &wanted.k8s_namespace {
            None => Ok(wanted
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.to_string())),
            Some(ns) => crate::tenant::acting_tenant(ns, wanted.tenant.as_deref(), tenants),
        };
        let tenant = match bound {
            Ok(t) => t,
            Err(e) => {
                rs.problems
                    .push(format!("{label}: {}: {e}", wanted.tenant_key));
                rs.keep.insert(wanted.namespace);
                continue;
            }
        };
        let tenant = tenant.as_str();
        let kind = wanted.kind;
        let upstream = kind.upstream();
        let ruler = by_tenant.get(&(tenant.to_string(), kind)).copied();
        if ruler.is_none() {
            let why = match wanted.tenant {
                Some(_) if !by_tenant.keys().any(|(_, k)| *k == kind) => {
                    format!(
                        "no tenant has a {upstream} upstream (the {} ruler)",
                        kind.as_str()
                    )
                }
                Some(_) => {
                    format!("tenant {tenant:?} does not exist or has no {upstream} upstream")
                }
                None => format!("missing, and the default tenant has no {upstream} upstream"),
            };
            found.push(format!("{}: {why}", wanted.tenant_key));
        }
        let groups: Vec<Group> = wanted
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| check_group(g, kind, &format!("{}[{i}]", wanted.at), &mut found))
            .collect();
        check_unique_names(&groups, wanted.at, &mut found);
        let ns = wanted.namespace;
        match ruler {
            Some(r) if found.is_empty() => {
                // Two files for one ruler namespace: both are refused, and
                // nothing is written to (or deleted from) it until one goes.
                if let Some(first) = owner.get(&(r, ns.clone())) {
                    rs.problems.push(format!(
                        "{label}: ruler namespace {ns} is also written by {first}; neither is applied"
                    ));
                    rs.rulers[r].namespaces.remove(&ns);
                    rs.keep.insert(ns);
                    continue;
                }
                owner.insert((r, ns.clone()), label);
                rs.rulers[r].namespaces.insert(ns, groups);
            }
            _ => {
                rs.problems
                    .extend(found.into_iter().map(|p| format!("{label}: {p}")));
                rs.keep.insert(ns);
            }
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
