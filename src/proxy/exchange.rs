//! `Exchange`: what one proxied request did, shared by its request and
//! response bodies. When the last holder drops it (both bodies done, or the
//! client gone), `Drop` records the metrics and writes the access-log line,
//! so a stream that is cut short is still counted and logged, with its
//! outcome.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;

use super::target::Target;
use crate::error::UpstreamErrorKind;
use crate::tenant::InFlightGuard;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client -> upstream.
    In,
    /// Upstream -> client.
    Out,
}

const OUTCOME_PENDING: u8 = 0;
const OUTCOME_DONE: u8 = 1;
const OUTCOME_ABORTED: u8 = 2;

pub struct Exchange {
    start: Instant,
    method: &'static str,
    route: Arc<str>,
    target: Arc<Target>,
    request_id: HeaderValue,
    status: AtomicU16,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    outcome: AtomicU8,
    /// The client's request body failed (bad chunk, client gone): the
    /// exchange's failure is the client's, not the upstream's.
    request_body_failed: AtomicBool,
    /// The tenant's concurrency slot, released when the exchange ends.
    _slot: Option<InFlightGuard>,
}

impl Exchange {
    pub fn new(
        start: Instant,
        method: &'static str,
        route: Arc<str>,
        target: Arc<Target>,
        request_id: HeaderValue,
        slot: Option<InFlightGuard>,
    ) -> Arc<Self> {
        target.metrics.in_flight.inc();
        Arc::new(Exchange {
            start,
            method,
            route,
            target,
            request_id,
            status: AtomicU16::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            outcome: AtomicU8::new(OUTCOME_PENDING),
            request_body_failed: AtomicBool::new(false),
            _slot: slot,
        })
    }

    pub fn request_id(&self) -> &HeaderValue {
        &self.request_id
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Relaxed);
    }

    /// The exchange ended without an upstream response. `kind` is set for
    /// upstream faults (502/504), `None` for the client's (400).
    pub fn failed(&self, status: u16, kind: Option<UpstreamErrorKind>) {
        self.set_status(status);
        if let Some(kind) = kind {
            self.target
                .metrics
                .upstream_errors
                .with_label_values(&[&self.target.name, kind.as_str()])
                .inc();
        }
        self.outcome.store(OUTCOME_DONE, Relaxed);
    }

    pub fn request_body_failed(&self) -> bool {
        self.request_body_failed.load(Relaxed)
    }

    pub(super) fn add_bytes(&self, dir: Direction, n: u64) {
        match dir {
            Direction::In => self.bytes_in.fetch_add(n, Relaxed),
            Direction::Out => self.bytes_out.fetch_add(n, Relaxed),
        };
    }

    pub(super) fn body_done(&self, dir: Direction) {
        if dir == Direction::Out {
            let _ = self
                .outcome
                .compare_exchange(OUTCOME_PENDING, OUTCOME_DONE, Relaxed, Relaxed);
        }
    }

    pub(super) fn body_failed(&self, dir: Direction) {
        self.outcome.store(OUTCOME_ABORTED, Relaxed);
        if dir == Direction::In {
            self.request_body_failed.store(true, Relaxed);
        }
        if dir == Direction::Out {
            self.target
                .metrics
                .upstream_errors
                .with_label_values(&[&self.target.name, UpstreamErrorKind::Reset.as_str()])
                .inc();
        }
    }

    /// A response with an empty body (HEAD, 204, 304) ends with its headers.
    pub fn response_has_no_body(&self) {
        self.body_done(Direction::Out);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let t = &self.target;
        let m = &t.metrics;
        let status = self.status.load(Relaxed);
        let code = http::StatusCode::from_u16(status).ok();
        let status_label = code.as_ref().map_or("0", http::StatusCode::as_str);
        let elapsed = self.start.elapsed();
        let bytes_in = self.bytes_in.load(Relaxed);
        let bytes_out = self.bytes_out.load(Relaxed);
        m.in_flight.dec();
        m.requests
            .with_label_values(&[&t.name, &t.tenant_label, self.method, status_label])
            .inc();
        m.duration
            .with_label_values(&[&t.name, &t.tenant_label, self.method])
            .observe(elapsed.as_secs_f64());
        m.request_bytes
            .with_label_values(&[&t.name, &t.tenant_label])
            .inc_by(bytes_in);
        m.response_bytes
            .with_label_values(&[&t.name, &t.tenant_label])
            .inc_by(bytes_out);
        let outcome = match self.outcome.load(Relaxed) {
            OUTCOME_DONE => "complete",
            OUTCOME_ABORTED => "aborted",
            _ => "client_gone",
        };
        tracing::info!(
            target: "access",
            method = self.method,
            route = &*self.route,
            upstream = &*t.name,
            tenant = &*t.tenant_label,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            outcome,
            request_id = self.request_id.to_str().unwrap_or("-"),
        );
    }
}
