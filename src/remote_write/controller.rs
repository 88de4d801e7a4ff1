//! The controller: one task per job, each on its own interval (with a
//! random phase, so jobs spread out), collecting from the healthy sources,
//! filtering, enriching and delivering. A reload restarts only the jobs
//! whose definition changed; sources are swapped in place.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::task::AbortHandle;

use super::cycle::{run, Shared};
use super::deliver::Pusher;
use super::source::Sources;
use super::spec::{BasicAuth, Job, RemoteWrite};
use crate::proxy::ClientSet;
use crate::telemetry::Metrics;

pub struct Controller {
    metrics: Arc<Metrics>,
    sources: Arc<ArcSwapOption<Sources>>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    source_key: Option<(Vec<String>, Option<BasicAuth>)>,
    /// The health checker of the current sources.
    checker: Option<AbortHandle>,
    jobs: BTreeMap<String, Running>,
}

struct Running {
    job: Arc<Job>,
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Controller {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Controller {
            metrics,
            sources: Arc::new(ArcSwapOption::empty()),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Bring the running jobs in line with `rw`. Outside a tokio runtime
    /// (an `App` built for a unit test) nothing is started.
    pub fn reconcile(&self, rw: Option<&RemoteWrite>, clients: &mut ClientSet) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let empty = RemoteWrite::default();
        let rw = rw.unwrap_or(&empty);
        for problem in &rw.manifest_problems {
            tracing::warn!(%problem, "MetricAccess manifest skipped");
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (rw.sources.clone(), rw.source_auth.clone());
        if inner.source_key.as_ref() != Some(&key) {
            let sources = Arc::new(Sources::new(
                rw.sources.clone(),
                rw.source_auth.as_ref(),
                self.metrics.clone(),
                clients,
            ));
            if let Some(old) = inner.checker.take() {
                old.abort();
            }
            inner.checker = Some(tokio::spawn(sources.clone().check_forever()).abort_handle());
            self.sources.store(Some(sources));
            inner.source_key = Some(key);
        }
        let mut next = BTreeMap::new();
        for job in &rw.jobs {
            let k = job.key();
            match inner.jobs.remove(&k) {
                Some(r) if *r.job == *job => {
                    next.insert(k, r);
                }
                old => {
                    if let Some(old) = old {
                        old.task.abort();
                    }
                    if let Some(r) = self.spawn(job.clone(), clients) {
                        next.insert(k, r);
                    }
                }
            }
        }
        for (k, r) in std::mem::take(&mut inner.jobs) {
            tracing::info!(job = %k, "remote-write job removed");
            r.task.abort();
        }
        inner.jobs = next;
    }

    fn spawn(&self, job: Job, clients: &mut ClientSet) -> Option<Running> {
        let pusher = match Pusher::new(&job.target, clients) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(job = %job.key(), error = %e, "remote-write job not started");
                return None;
            }
        };
        let job = Arc::new(job);
        let shared = Arc::new(Shared::default());
        tracing::info!(
            job = %job.key(),
            origin = %job.origin,
            target_type = job.target.kind.as_str(),
            interval = ?job.interval,
            "remote-write job started"
        );
        let task = tokio::spawn(run(
            job.clone(),
            shared.clone(),
            self.sources.clone(),
            self.metrics.clone(),
            pusher,
        ))
        .abort_handle();
        Some(Running { job, shared, task })
    }

    /// `GET /collected-metrics`: the latest collection of every job.
    pub fn collected_json(&self) -> serde_json::Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let jobs: Vec<serde_json::Value> = inner
            .jobs
            .values()
            .map(|r| {
                let series = r
                    .shared
                    .latest
                    .lock()
                    .map(|l| l.clone())
                    .unwrap_or_default();
                serde_json::json!({
                    "namespace": r.job.namespace,
                    "name": r.job.name,
                    "tenant": r.job.tenant,
                    "target_type": r.job.target.kind.as_str(),
                    "count": series.len(),
                    "series": *series,
                })
            })
            .collect();
        serde_json::json!({ "jobs": jobs })
    }

    /// `GET /debug/targets`: the sources and their health.
    pub fn targets_json(&self) -> serde_json::Value {
        let sources = self
            .sources
            .load_full()
            .map(|s| s.describe())
            .unwrap_or_else(|| serde_json::json!([]));
        serde_json::json!({ "sources": sources })
    }

    /// For /health: one line per job; `None` without jobs.
    pub fn health_summary(&self) -> Option<serde_json::Value> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.jobs.is_empty() {
            return None;
        }
        let jobs: serde_json::Map<String, serde_json::Value> = inner
            .jobs
            .iter()
            .map(|(k, r)| {
                let s = r
                    .shared
                    .status
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or_default();
                let state = match (&s.last_error, s.last_success_unix) {
                    (None, Some(_)) => "ok",
                    (None, None) => "starting",
                    (Some(_), _) => "failing",
                };
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["state"] = state.into();
                (k.clone(), v)
            })
            .collect();
        Some(serde_json::Value::Object(jobs))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(inner) = self.inner.lock() {
            for r in inner.jobs.values() {
                r.task.abort();
            }
            if let Some(c) = &inner.checker {
                c.abort();
            }
        }
    }
}
