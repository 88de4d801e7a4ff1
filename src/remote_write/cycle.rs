//! One job's cycle, on its own interval: collect from every healthy
//! source at once (each query bounded), merge, filter to the job's
//! namespace and enrich; then deliver the queue in batches with retries
//! until it is empty or the next cycle is due. Status lands in the job's
//! `Shared` for /health and /collected-metrics.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::Serialize;

use super::deliver::{backoff, DeliveryOutcome, Pusher, Queue, QUEUE_CAP};
use super::series::{enrich, export_grouping_labels, Merged, Series};
use super::source::Sources;
use super::spec::Job;
use crate::telemetry::{unix_now, Metrics};

/// What a job's task reports, for /health and /collected-metrics.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) status: Mutex<Status>,
    pub(super) latest: Mutex<Arc<Vec<Series>>>,
}

#[derive(Default, Clone, Serialize)]
pub(super) struct Status {
    pub(super) last_collect_unix: Option<f64>,
    pub(super) last_collected: usize,
    pub(super) sources_used: usize,
    pub(super) last_success_unix: Option<f64>,
    pub(super) last_error: Option<String>,
    pub(super) queued: usize,
}

/// A query never waits longer than this, nor longer than half the job's
/// interval: a source that hangs on queries still leaves the cycle time to
/// deliver what the other sources returned.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A number in [0, 1) for jitter; std's per-process random hash keys are
/// enough for spreading timers.
fn jitter() -> f64 {
    let h = RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub(super) async fn run(
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
