//! `Gated`: the `tower::Layer` + `Service` for a layer that decides before
//! the request goes on (admit it, maybe noting what it learned in the
//! `Ctx`, or refuse it). Each such layer implements `Gate`; the service
//! and its future are written once here. No boxing: the future is the
//! inner one, or a ready refusal.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use tower::{Layer, Service};

use super::ctx::{Inbound, Refusal};
use crate::error::ProxyError;
use crate::proxy::Body;

/// One decision on the way in.
pub trait Gate {
    /// `Ok`: the request goes on (with what was learned in `call.ctx`).
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError>;
}

/// Gates in a row are one gate: each admits in turn, the first refusal
/// ends it. The stack runs its decisions this way, as one service, because
/// each service level moves the whole request (`Inbound`, ~450 bytes) once
/// more: six levels cost ~400 instructions per request (callgrind).
macro_rules! gates_in_a_row {
    ($($g:ident),+) => {
        impl<$($g: Gate),+> Gate for ($($g,)+) {
            #[inline]
            fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
                #[allow(non_snake_case)]
                let ($($g,)+) = self;
                $($g.admit(call)?;)+
                Ok(())
            }
        }
    };
}
gates_in_a_row!(A, B2);
gates_in_a_row!(A, B2, C);
gates_in_a_row!(A, B2, C, D);
gates_in_a_row!(A, B2, C, D, E);
gates_in_a_row!(A, B2, C, D, E, F);
gates_in_a_row!(A, B2, C, D, E, F, G);

/// The service of a `Gate` in front of `inner`; also its layer.
#[derive(Debug, Clone, Copy)]
pub struct Gated<G, S> {
    gate: G,
    inner: S,
}

impl<G: Gate + Clone> Gated<G, ()> {
    /// The layer that puts `gate` in front of a service.
    pub fn layer(gate: G) -> GateLayer<G> {
        GateLayer(gate)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GateLayer<G>(G);

impl<G: Clone, S> Layer<S> for GateLayer<G> {
    type Service = Gated<G, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated {
            gate: self.0.clone(),
            inner,
        }
    }
}

impl<G, S, B> Service<Inbound<B>> for Gated<G, S>
where
    G: Gate,
    B: http_body::Body,
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal>,
{
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = Flow<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut call: Inbound<B>) -> Self::Future {
        match self.gate.admit(&mut call) {
            Ok(()) => Flow::Next {
                next: self.inner.call(call),
            },
            Err(error) => Flow::Done {
                outcome: Some(Err(Refusal::local(error, call.ctx))),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, or an outcome known at once.
    #[project = FlowProj]
    pub enum Flow<F> {
        Next { #[pin] next: F },
        Done { outcome: Option<Result<Response<Body>, Refusal>> },
    }
}

impl<F> Flow<F> {
    pub fn done(outcome: Result<Response<Body>, Refusal>) -> Self {
        Flow::Done {
            outcome: Some(outcome),
        }
    }
}

impl<F> Future for Flow<F>
where
    F: Future<Output = Result<Response<Body>, Refusal>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FlowProj::Next { next } => next.poll(cx),
            // Polled once: a `Flow` is never polled after it is ready.
            FlowProj::Done { outcome } => match outcome.take() {
                Some(o) => Poll::Ready(o),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request, READER};
    use crate::stack::{Authenticate, CanonicalTarget, Route};

    #[tokio::test]
    async fn gates_in_a_row_run_in_order_and_stop_at_the_first_refusal() {
        let f = fixture();
        let row = (CanonicalTarget, Authenticate, Route);
        let auth = [("authorization", READER)];
        let mut call = f.inbound(request("GET", "/prometheus/api/v1/query", &auth));
        row.admit(&mut call).unwrap();
        assert!(call.ctx.caller.is_some() && call.ctx.route.is_some());
        // Refused by the first: the others never ran.
        let mut call = f.inbound(request("GET", "/prometheus%2Fapi", &auth));
        assert_eq!(row.admit(&mut call).unwrap_err().status(), 400);
        assert!(call.ctx.caller.is_none() && call.ctx.route.is_none());
        // Refused by the second: the third never ran.
        let mut call = f.inbound(request("GET", "/prometheus/api/v1/query", &[]));
        assert_eq!(row.admit(&mut call).unwrap_err().status(), 401);
        assert!(call.ctx.route.is_none());
    }
}
