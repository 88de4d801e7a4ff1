//! The controller: one task per job, each on its own interval (with a
//! random phase, so jobs spread out), collecting from the healthy sources,
//! filtering, enriching and delivering. A reload restarts only the jobs
//! whose definition changed; sources are swapped in place.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::task::AbortHandle;

use super::deliver::{backoff, DeliveryOutcome, Pusher, Queue, QUEUE_CAP};
use super::series::{enrich, export_grouping_labels, Merged, Series};
use super::source::Sources;
use super::spec::{BasicAuth, Job, RemoteWrite};
use crate::proxy::ClientSet;
use crate::telemetry::{unix_now, Metrics};

/// A query never waits longer than this, nor longer than half the job's
/// interval: a source that hangs on queries still leaves the cycle time to
/// deliver what the other sources returned.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// What a job's task reports, for /health and /collected-metrics.
#[derive(Default)]
struct Shared {
    status: Mutex<Status>,
    latest: Mutex<Arc<Vec<Series>>>,
}

#[derive(Default, Clone, Serialize)]
struct Status {
    last_collect_unix: Option<f64>,
    last_collected: usize,
    sources_used: usize,
    last_success_unix: Option<f64>,
    last_error: Option<String>,
    queued: usize,
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

/// A number in [0, 1) for jitter; std's per-process random hash keys are
/// enough for spreading timers.
fn jitter() -> f64 {
    let h = RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

async fn run(
    job: Arc<Job>,
    shared: Arc<Shared>,
    sources: Arc<ArcSwapOption<Sources>>,
    metrics: Arc<Metrics>,
    pusher: Pusher,
) {
    let kind = job.target.kind.as_str();
    let labels = [job.tenant.as_str(), kind];
    let rw = &metrics.remote_write;
    let collected = rw.collected.with_label_values(&labels);
    let queue_full = rw
        .dropped
        .with_label_values(&[&job.tenant, kind, "queue_full"]);
    let mut queue = Queue::new(QUEUE_CAP, !job.target.kind.is_remote_write());
    let mut next = tokio::time::Instant::now() + job.interval.mul_f64(jitter());
    loop {
        tokio::time::sleep_until(next).await;
        next += job.interval;
        let now = tokio::time::Instant::now();
        if next <= now {
            next = now + job.interval;
        }
        let Some(src) = sources.load_full() else {
            continue;
        };
        let (series, used, error) = collect(&job, &src).await;
        collected.inc_by(series.len() as u64);
        tracing::info!(
            namespace = %job.namespace,
            name = %job.name,
            count = series.len(),
            targets_used = used,
            "Collected metrics for remote write job"
        );
        if let Some(e) = &error {
            tracing::warn!(job = %job.key(), error = %e, "remote-write collection incomplete");
        }
        {
            let mut s = shared.status.lock().unwrap_or_else(|p| p.into_inner());
            s.last_collect_unix = Some(unix_now());
            s.last_collected = series.len();
            s.sources_used = used;
            s.last_error = error;
        }
        *shared.latest.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(series.clone());
        queue_full.inc_by(queue.push(series) as u64);
        deliver(&job, &shared, &metrics, &pusher, &mut queue, next).await;
        shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queued = queue.len();
    }
}

/// Query every pattern on every healthy source at once; merge, filter to
/// the job's namespace, enrich. Returns the series, the sources used, and
/// what went wrong (if anything).
async fn collect(job: &Arc<Job>, sources: &Arc<Sources>) -> (Vec<Series>, usize, Option<String>) {
    let healthy = sources.healthy().await;
    if healthy.is_empty() {
        let e = if sources.urls().is_empty() {
            "no source configured"
        } else {
            "no healthy source"
        };
        return (Vec::new(), 0, Some(e.to_string()));
    }
    let timeout = (job.interval / 2).min(QUERY_TIMEOUT);
    let mut queries = tokio::task::JoinSet::new();
    for &i in &healthy {
        for sel in &job.selectors {
            let (src, sel) = (sources.clone(), sel.clone());
            queries.spawn(async move { (i, src.query(i, &sel, timeout).await) });
        }
    }
    let mut merged = Merged::default();
    let mut errors = Vec::new();
    let mut used = vec![false; sources.urls().len()];
    while let Some(joined) = queries.join_next().await {
        let Ok((i, result)) = joined else { continue };
        match result {
            Ok(samples) => {
                used[i] = true;
                for s in samples {
                    merged.add(s.labels, s.value, s.timestamp_ms);
                }
            }
            Err(e) => errors.push(format!("{}: {e}", sources.urls()[i])),
        }
    }
    let (mut series, foreign) = merged.into_namespace(&job.namespace);
    if foreign > 0 {
        tracing::debug!(job = %job.key(), dropped = foreign, "series outside the job's namespace dropped");
    }
    let pushgateway = !job.target.kind.is_remote_write();
    for s in &mut series {
        enrich(&mut s.labels, &job.extra_labels, job.honor_labels);
        if pushgateway {
            export_grouping_labels(&mut s.labels);
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    (series, used.iter().filter(|u| **u).count(), error)
}

/// Send the queue in batches until it is empty or the next cycle is due;
/// what could not be sent stays queued (within the cap).
async fn deliver(
    job: &Job,
    shared: &Shared,
    metrics: &Metrics,
    pusher: &Pusher,
    queue: &mut Queue,
    deadline: tokio::time::Instant,
) {
    let kind = job.target.kind.as_str();
    let rw = &metrics.remote_write;
    let duration = rw.duration.with_label_values(&[&job.tenant, kind]);
    let mut failures = 0u32;
    let mut sent_any = false;
    while !queue.is_empty() {
        let batch = queue.take();
        let body = pusher.encode(&batch);
        loop {
            let start = Instant::now();
            let attempt = pusher.send(body.clone()).await;
            duration.observe(start.elapsed().as_secs_f64());
            rw.requests
                .with_label_values(&[&job.tenant, kind, &attempt.status_label()])
                .inc();
            match attempt {
                DeliveryOutcome::Delivered(_) => {
                    failures = 0;
                    sent_any = true;
                    break;
                }
                DeliveryOutcome::Refused(status, text) => {
                    rw.dropped
                        .with_label_values(&[&job.tenant, kind, "rejected"])
                        .inc_by(batch.len() as u64);
                    let e = format!(
                        "target refused {} series: {} {text}",
                        batch.len(),
                        status.as_u16()
                    );
                    tracing::warn!(job = %job.key(), error = %e, "remote-write push refused");
                    set_error(shared, e);
                    break;
                }
                DeliveryOutcome::Retry {
                    status,
                    after,
                    error,
                } => {
                    let e = match status {
                        Some(s) => format!("target answered {}: {error}", s.as_u16()),
                        None => format!("target unreachable: {error}"),
                    };
                    tracing::warn!(job = %job.key(), error = %e, retry = failures, "remote-write push failed");
                    set_error(shared, e);
                    let wait = backoff(failures, after, jitter());
                    failures += 1;
                    if tokio::time::Instant::now() + wait >= deadline {
                        rw.dropped
                            .with_label_values(&[&job.tenant, kind, "queue_full"])
                            .inc_by(queue.put_back(batch) as u64);
                        return;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    let mut s = shared.status.lock().unwrap_or_else(|p| p.into_inner());
    if sent_any {
        let now = unix_now();
        s.last_success_unix = Some(now);
        if s.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("target"))
        {
            s.last_error = None;
        }
        rw.last_success
            .with_label_values(&[&job.namespace, &job.name, &job.tenant])
            .set(now);
    }
}

fn set_error(shared: &Shared, e: String) {
    shared
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last_error = Some(e);
}
