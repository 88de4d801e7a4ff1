//! `Exchange`: what one proxied request did, shared by its request and
//! response bodies. When the last holder drops it (both bodies done, or the
//! client gone), `Drop` records the metrics and writes the access-log line,
//! so a stream that is cut short is still counted and logged, with its
//! outcome.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use super::meter::TargetMeter;
use crate::error::UpstreamErrorKind;
use crate::telemetry::metrics::METHOD_LABELS;
use crate::tenant::InFlightGuard;
use http::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client -> upstream.
    In,
    /// Upstream -> client.
    Out,
}

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyEnd {
    Open = 0,
    Complete = 1,
    /// The sending side failed (reset, malformed chunk, client gone).
    Failed = 2,
    /// Cut by `idle_timeout`.
    Idle = 3,
    /// Cut by `max_body_bytes`.
    TooLarge = 4,
}

impl BodyEnd {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Complete,
            2 => Self::Failed,
            3 => Self::Idle,
            4 => Self::TooLarge,
            _ => Self::Open,
        }
    }
}

pub struct Exchange {
    start: Instant,
    /// A `method_index`.
    method: usize,
    route: Arc<str>,
    meter: Arc<TargetMeter>,
    request_id: HeaderValue,
    status: AtomicU16,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    request_end: AtomicU8,
    response_end: AtomicU8,
    /// Set when the exchange ended without an upstream response.
    answered_locally: AtomicU8,
    /// Concurrency slots (global, tenant), released when the exchange ends.
    _slots: [Option<InFlightGuard>; 2],
}

impl Exchange {
    pub fn new(
        start: Instant,
        method: usize,
        route: Arc<str>,
        meter: Arc<TargetMeter>,
        request_id: HeaderValue,
        slots: [Option<InFlightGuard>; 2],
    ) -> Arc<Self> {
        meter.metrics.in_flight.inc();
        Arc::new(Exchange {
            start,
            method,
            route,
            meter,
            request_id,
            status: AtomicU16::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            request_end: AtomicU8::new(BodyEnd::Open as u8),
            response_end: AtomicU8::new(BodyEnd::Open as u8),
            answered_locally: AtomicU8::new(0),
            _slots: slots,
        })
    }

    /// Both bodies went through whole: the upstream connection is at a
    /// message boundary and can carry another request.
    pub(super) fn completed_both_ways(&self) -> bool {
        self.request_end() == BodyEnd::Complete
            && BodyEnd::from_u8(self.response_end.load(Relaxed)) == BodyEnd::Complete
    }

    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        &self.meter.metrics
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Relaxed);
    }

    /// The exchange ended without an upstream response. `kind` is set for
    /// upstream faults (502/504), `None` for the client's (4xx).
    pub fn failed(&self, status: u16, kind: Option<UpstreamErrorKind>) {
        self.set_status(status);
        if let Some(kind) = kind {
            self.count_upstream_error(kind);
        }
        self.answered_locally.store(1, Relaxed);
    }

    /// How the client's request body ended (`Open` while it streams).
    pub fn request_end(&self) -> BodyEnd {
        BodyEnd::from_u8(self.request_end.load(Relaxed))
    }

    pub(super) fn add_bytes(&self, dir: Direction, n: u64) {
        match dir {
            Direction::In => self.bytes_in.fetch_add(n, Relaxed),
            Direction::Out => self.bytes_out.fetch_add(n, Relaxed),
        };
    }

    /// Record the first way a body ended.
    pub(super) fn body_ended(&self, dir: Direction, end: BodyEnd) {
        let slot = match dir {
            Direction::In => &self.request_end,
            Direction::Out => &self.response_end,
        };
        if slot
            .compare_exchange(BodyEnd::Open as u8, end as u8, Relaxed, Relaxed)
            .is_ok()
            && dir == Direction::Out
        {
            match end {
                BodyEnd::Failed => self.count_upstream_error(UpstreamErrorKind::Reset),
                BodyEnd::Idle => self.count_upstream_error(UpstreamErrorKind::Timeout),
                _ => {}
            }
        }
    }

    /// A request without a body (most GETs) ends with its headers.
    pub fn request_has_no_body(&self) {
        self.body_ended(Direction::In, BodyEnd::Complete);
    }

    /// A response with an empty body (HEAD, 204, 304, 101) ends with its
    /// headers.
    pub fn response_has_no_body(&self) {
        self.body_ended(Direction::Out, BodyEnd::Complete);
    }

    fn count_upstream_error(&self, kind: UpstreamErrorKind) {
        self.meter
            .metrics
            .upstream_errors
            .with_label_values(&[&self.meter.name, kind.as_str()])
            .inc();
    }

    fn outcome(&self) -> &'static str {
        if self.answered_locally.load(Relaxed) == 1 {
            return "complete";
        }
        match (
            self.request_end(),
            BodyEnd::from_u8(self.response_end.load(Relaxed)),
        ) {
            (_, BodyEnd::Complete) => "complete",
            (_, BodyEnd::Idle) | (BodyEnd::Idle, _) => "idle_timeout",
            (_, BodyEnd::TooLarge) | (BodyEnd::TooLarge, _) => "body_too_large",
            (_, BodyEnd::Failed) | (BodyEnd::Failed, _) => "aborted",
            _ => "client_gone",
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let t = &self.meter;
        let m = &t.metrics;
        let status = self.status.load(Relaxed);
        let code = http::StatusCode::from_u16(status).ok();
        let status_label = code.as_ref().map_or("0", http::StatusCode::as_str);
        let elapsed = self.start.elapsed();
        let bytes_in = self.bytes_in.load(Relaxed);
        let bytes_out = self.bytes_out.load(Relaxed);
        m.in_flight.dec();
        t.count_request(self.method, status, status_label);
        t.duration_series(self.method)
            .observe(elapsed.as_secs_f64());
        t.request_bytes_series().inc_by(bytes_in);
        t.response_bytes_series().inc_by(bytes_out);
        tracing::info!(
            target: "access",
            method = METHOD_LABELS[self.method],
            route = &*self.route,
            upstream = &*t.name,
            tenant = &*t.tenant_label,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            outcome = self.outcome(),
            request_id = self.request_id.to_str().unwrap_or("-"),
        );
    }
}
