//! `Record`: counts and logs every refusal made before an upstream
//! exchange (own endpoints' included), once, where it passes on its way
//! out. A forwarded request's `Exchange` records itself when its bodies
//! end (duration and bytes are only known then), so `Record` leaves the
//! refusals that carry no `Ctx` alone: each outcome is counted once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use tower::{Layer, Service};

use super::ctx::{Inbound, Refusal};
use crate::error::ProxyError;
use crate::proxy::Body;

#[derive(Debug, Clone, Copy)]
pub struct Record;

impl<S> Layer<S> for Record {
    type Service = RecordService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordService { inner }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RecordService<S> {
    inner: S,
}

impl<S, B> Service<Inbound<B>> for RecordService<S>
where
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal>,
{
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, call: Inbound<B>) -> Self::Future {
        Recorded {
            inner: self.inner.call(call),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Recorded<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Future for Recorded<F>
where
    F: Future<Output = Result<Response<Body>, Refusal>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut outcome = std::task::ready!(self.project().inner.poll(cx));
        if let Err(refusal) = &mut outcome {
            record(refusal);
        }
        Poll::Ready(outcome)
    }
}

/// Count and log a local refusal, and give it its request id.
fn record(refusal: &mut Refusal) {
    let Some(ctx) = refusal.local.as_deref() else {
        return;
    };
    let err = &refusal.error;
    let app = &ctx.conn.app;
    let metrics = app.metrics();
    let id = refusal
        .request_id
        .get_or_insert_with(|| app.request_ids().next());
    let status = err.status();
    let [tenant, route, upstream] = ctx.labels();
    let method = ctx.method;
    let elapsed = ctx.start.elapsed().as_secs_f64();
    metrics
        .requests
        .with_label_values(&[upstream, tenant, method, status.as_str()])
        .inc();
    metrics
        .duration
        .with_label_values(&[upstream, tenant, method])
        .observe(elapsed);
    if let Some(reason) = auth_failure(err) {
        metrics.auth_failures.with_label_values(&[reason]).inc();
    }
    tracing::info!(
        target: "access",
        method,
        route,
        upstream,
        tenant,
        status = status.as_u16(),
        duration_ms = elapsed * 1000.0,
        bytes_in = 0u64,
        bytes_out = 0u64,
        outcome = "rejected",
        request_id = id.to_str().unwrap_or("-"),
        error = %err,
    );
}

/// The `reason` of `lgtm_proxy_auth_failures_total` a refusal counts as.
fn auth_failure(err: &ProxyError) -> Option<&'static str> {
    match err {
        ProxyError::Auth(e) => Some(e.reason()),
        ProxyError::ClassDenied { .. } => Some("forbidden_class"),
        _ => None,
    }
}
