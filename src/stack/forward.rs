//! `Forward`: the innermost service. It hands the routed request, with
//! the slots and session the layers took and its request id, to
//! `proxy::forward`, which sends it on the target's upstream client and
//! streams the answer back. Its future is boxed: `proxy::forward` is an
//! `async fn` whose type can't be named (one allocation per request; the
//! hyper-util client it replaced boxed its future too).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use hyper::body::Incoming;
use tower::Service;

use super::ctx::{Inbound, Refusal};
use crate::error::ProxyError;
use crate::proxy::headers::X_REQUEST_ID;
use crate::proxy::{forward, Body, Failed, RequestIds, Routed};

#[derive(Debug, Clone, Copy)]
pub struct Forward;

type Sending = Pin<Box<dyn Future<Output = Result<Response<Body>, Failed>> + Send>>;

impl Service<Inbound<Incoming>> for Forward {
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = Forwarding;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Inbound<Incoming>) -> Self::Future {
        let Inbound { req, mut ctx } = call;
        let route = ctx.route.and_then(|i| ctx.state.table.route(i));
        let (Some(route), Some(target)) = (route, ctx.target.take()) else {
            // Only a stack composed without `Route` gets here: fail closed.
            return Forwarding::Refused {
                refusal: Some(Refusal::local(ProxyError::NoRoute, ctx)),
            };
        };
        let request_id = req
            .headers()
            .get(&X_REQUEST_ID)
            .filter(|v| RequestIds::accept(v))
            .cloned()
            .unwrap_or_else(|| ctx.conn.app.request_ids().next());
        let routed = Routed {
            target,
            route: route.prefix.clone(),
            path_and_query: std::mem::take(&mut ctx.path_and_query),
            client: ctx.conn.peer.clone(),
            start: ctx.start,
            slots: [ctx.admitted.take(), ctx.tenant_slot.take()],
            upgrade_idle_timeout: route.upgrade_idle_timeout,
            max_body_bytes: route.max_body_bytes,
            via: ctx.state.via.clone(),
            session: ctx.session.take(),
            request_id,
        };
        Forwarding::Sending {
            sending: Box::pin(forward(routed, req)),
        }
    }
}

pin_project_lite::pin_project! {
    /// `proxy::forward`'s future, its failure as a `Refusal`.
    #[project = ForwardingProj]
    pub enum Forwarding {
        Sending { #[pin] sending: Sending },
        Refused { refusal: Option<Refusal> },
    }
}

impl Future for Forwarding {
    type Output = Result<Response<Body>, Refusal>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ForwardingProj::Sending { sending } => sending.poll(cx).map_err(Refusal::from),
            ForwardingProj::Refused { refusal } => match refusal.take() {
                Some(r) => Poll::Ready(Err(r)),
                None => Poll::Pending,
            },
        }
    }
}
