//! The sync itself: one pass over every ruler (read, plan, apply), shared
//! by the background task of `serve` and by `lgtm-proxy rules-sync`. The
//! task runs a pass at once on every new config (rule files are part of
//! the reload fingerprint) and every `interval` after, which also repairs
//! drift on the ruler. Rulers are handled concurrently and independently:
//! one unreachable tenant never holds up another.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::watch;

use super::kind::RulerKind;
use super::load::RulesSync;
use super::plan::{plan, Action, Guard};
use super::ruler::Ruler;
use crate::proxy::ClientSet;
use crate::telemetry::{unix_now, Metrics};

/// A config's rules sync with its rulers' clients, built once per config.
pub struct Active {
    pub rs: RulesSync,
    pub rulers: Vec<Ruler>,
}

impl Active {
    pub fn new(rs: &RulesSync, clients: &mut ClientSet) -> Arc<Self> {
        Arc::new(Active {
            rulers: rs
                .rulers
                .iter()
                .map(|r| Ruler::new(clients, &r.upstream, r.kind))
                .collect(),
            rs: rs.clone(),
        })
    }
}

/// What one pass did (or, dry, would do) on one ruler.
#[derive(Debug, Clone)]
pub struct Report {
    pub tenant: String,
    pub ruler: RulerKind,
    /// Its key in /health (`RulerTarget::status_key`).
    pub key: String,
    pub url: String,
    /// `create ns/group`, ... in the order applied.
    pub changes: Vec<(Action, String)>,
    pub unchanged: usize,
    /// Deletions not made (an invalid file owns the namespace, or held).
    pub held: Vec<String>,
    /// The ruler could not be read: nothing was planned.
    pub unreachable: Option<String>,
    /// Changes the ruler refused or never answered.
    pub failed: Vec<String>,
    pub groups: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.unreachable.is_none() && self.failed.is_empty()
    }
}

/// One pass over ruler `i`: read it, plan, and unless `dry`, apply.
pub async fn sync_ruler(active: &Active, i: usize, dry: bool) -> Report {
    let target = &active.rs.rulers[i];
    let ruler = &active.rulers[i];
    let mut report = Report {
        tenant: target.label(),
        ruler: target.kind,
        key: target.status_key(),
        url: ruler.url().to_string(),
        changes: Vec::new(),
        unchanged: 0,
        held: Vec::new(),
        unreachable: None,
        failed: Vec::new(),
        groups: target.group_count(),
    };
    let actual = match ruler.list().await {
        Ok(a) => a,
        Err(e) => {
            report.unreachable = Some(e.to_string());
            return report;
        }
    };
    let guard = Guard {
        prefix: &active.rs.prefix,
        keep: &active.rs.keep,
        hold_all: active.rs.hold_deletes.is_some(),
    };
    let p = plan(&target.namespaces, &actual, &guard);
    report.unchanged = p.unchanged;
    report.held = p.held.iter().map(|(ns, g)| format!("{ns}/{g}")).collect();
    for c in &p.changes {
        let shown = format!("{}/{}", c.namespace, c.group);
        if !dry {
            let applied = match c.body {
                Some(g) => ruler.post(c.namespace, g).await,
                None => ruler.delete(c.namespace, c.group).await,
            };
            if let Err(e) = applied {
                report.failed.push(e.to_string());
                continue;
            }
        }
        report.changes.push((c.action, shown));
    }
    report
}

/// One pass over every ruler at once; reports in ruler order.
pub async fn pass(active: &Arc<Active>, dry: bool) -> Vec<Report> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..active.rulers.len() {
        let active = active.clone();
        tasks.spawn(async move { (i, sync_ruler(&active, i, dry).await) });
    }
    let mut reports: Vec<(usize, Report)> = tasks.join_all().await;
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// The dry-run plan, as `rules-sync --dry-run` prints it.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tenant {} {} ruler ({}):",
            self.tenant,
            self.ruler.as_str(),
            self.url
        )?;
        if let Some(e) = &self.unreachable {
            return writeln!(f, "  ruler unreachable: {e}");
        }
        for (action, what) in &self.changes {
            writeln!(f, "  {} {what}", action.as_str())?;
        }
        for what in &self.held {
            writeln!(f, "  keep {what} (deletion held: its rule file is invalid)")?;
        }
        for e in &self.failed {
            writeln!(f, "  failed: {e}")?;
        }
        writeln!(
            f,
            "  {} unchanged, {} change(s), {} group(s) managed",
            self.unchanged,
            self.changes.len(),
            self.groups
        )
    }
}

#[derive(Clone, Default)]
struct Status {
    state: &'static str,
    last_error: Option<String>,
    groups: usize,
    last_success: Option<f64>,
}

/// The background task of `serve`, reconciled with every config.
pub struct Syncer {
    tx: watch::Sender<Option<Arc<Active>>>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<BTreeMap<String, Status>>>,
    started: AtomicBool,
}

impl Syncer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Syncer {
            tx: watch::channel(None).0,
            metrics,
            status: Arc::default(),
            started: AtomicBool::new(false),
        }
    }

    /// Take a new config's rules sync (or none): a pass starts at once.
    pub fn reconcile(&self, rs: Option<&RulesSync>, clients: &mut ClientSet) {
        let m = &self.metrics.rules_sync;
        m.invalid_files
            .set(rs.map_or(0, |r| r.problems.len()) as i64);
        m.groups.reset();
        let Some(rs) = rs else {
            self.tx.send_replace(None);
            self.status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            return;
        };
        for problem in &rs.problems {
            tracing::warn!(%problem, "rule file skipped; its groups stay on the ruler as they are");
        }
        if let Some(file) = &rs.hold_deletes {
            tracing::warn!(%file, "a rule file cannot be read: no rule group is deleted until it is fixed");
        }
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.retain(|key, _| rs.rulers.iter().any(|r| r.status_key() == *key));
            for r in &rs.rulers {
                let t = r.label();
                let ruler = r.kind.as_str();
                for result in ["success", "failure"] {
                    m.syncs.with_label_values(&[&t, ruler, result]);
                }
                for a in Action::ALL {
                    m.changes.with_label_values(&[&t, ruler, a.as_str()]);
                }
                m.groups
                    .with_label_values(&[&t, ruler])
                    .set(r.group_count() as i64);
                let s = status.entry(r.status_key()).or_insert_with(|| Status {
                    state: "starting",
                    ..Status::default()
                });
                s.groups = r.group_count();
            }
        }
        self.tx.send_replace(Some(Active::new(rs, clients)));
        if tokio::runtime::Handle::try_current().is_ok()
            && !self.started.swap(true, Ordering::SeqCst)
        {
            tokio::spawn(run(
                self.tx.subscribe(),
                self.metrics.clone(),
                self.status.clone(),
            ));
        }
    }

    /// For /health: each ruler's state, or `None` without `[rules_sync]`.
    pub fn health_summary(&self) -> Option<serde_json::Value> {
        self.tx.borrow().as_ref()?;
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            status
                .iter()
                .map(|(t, s)| {
                    (
                        t.clone(),
                        json!({
                            "state": s.state,
                            "groups": s.groups,
                            "last_error": s.last_error,
                            "last_success": s.last_success,
                        }),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
    }
}

async fn run(
    mut rx: watch::Receiver<Option<Arc<Active>>>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<BTreeMap<String, Status>>>,
) {
    loop {
        let active = rx.borrow_and_update().clone();
        let next = match active {
            Some(active) => {
                for r in pass(&active, false).await {
                    record(&r, &metrics, &status);
                }
                Some(active.rs.interval)
            }
            None => None,
        };
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = async {
                match next {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

fn record(r: &Report, metrics: &Metrics, status: &Mutex<BTreeMap<String, Status>>) {
    let m = &metrics.rules_sync;
    let t = r.tenant.as_str();
    let ruler = r.ruler.as_str();
    for (action, what) in &r.changes {
        m.changes
            .with_label_values(&[t, ruler, action.as_str()])
            .inc();
        tracing::info!(tenant = t, ruler, action = action.as_str(), group = %what, "rule group synced");
    }
    if !r.held.is_empty() {
        tracing::warn!(
            tenant = t,
            ruler,
            held = r.held.len(),
            "rule group deletions held while a rule file is invalid"
        );
    }
    let error = r
        .unreachable
        .as_ref()
        .map(|e| format!("ruler unreachable: {e}"))
        .or_else(|| (!r.failed.is_empty()).then(|| r.failed.join("; ")));
    let now = unix_now();
    match &error {
        None => {
            m.syncs.with_label_values(&[t, ruler, "success"]).inc();
            m.last_success.with_label_values(&[t, ruler]).set(now);
        }
        Some(e) => {
            m.syncs.with_label_values(&[t, ruler, "failure"]).inc();
            tracing::warn!(tenant = t, ruler, error = %e, "rules sync failed; retried next interval");
        }
    }
    let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = status.get_mut(&r.key) {
        s.state = if error.is_none() { "ok" } else { "failing" };
        if error.is_none() {
            s.last_success = Some(now);
        }
        s.last_error = error;
        s.groups = r.groups;
    }
}
