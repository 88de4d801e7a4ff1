//! The inbound request path as a tower stack: one layer per decision,
//! composed in `inbound`, which reads top to bottom as a request flows.
//! A layer that refuses returns a `Refusal`; `Record` counts and logs it
//! and `Rescue` turns it into the contract's JSON response, each in that
//! one place. What the layers learn about a request travels with it in a
//! `Ctx` (typed fields, no per-request map), beside the `Request` itself.

mod admission;
mod authenticate;
mod authorize;
mod canonical_target;
mod ctx;
mod forward;
mod gate;
mod limit;
mod own_endpoints;
mod record;
mod rescue;
mod route;
mod service_account;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{AUTHORIZATION, PROXY_AUTHORIZATION};
use http::{Request, Response};
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::proxy::Body;

pub use admission::Admission;
pub use authenticate::Authenticate;
pub use authorize::Authorize;
pub use canonical_target::{CanonicalTarget, MAX_HEADER_BYTES, MAX_HEADER_FIELDS};
pub use ctx::{Caller, Conn, Ctx, Inbound, ProbesOnly, Refusal};
pub use forward::Forward;
pub use gate::{Gate, Gated};
pub use limit::Limit;
pub use own_endpoints::OwnEndpoints;
pub use record::Record;
pub use rescue::Rescue;
pub use route::Route;
pub use service_account::ServiceAccountToken;

/// The service for one connection's requests.
pub fn inbound(
    conn: Arc<Conn>,
) -> impl Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send {
    layers(conn, Forward)
}

/// Every layer, outermost first, around `innermost` (`Forward` when
/// served; the stack's tests put a recorder there).
pub fn layers<B, S>(
    conn: Arc<Conn>,
    innermost: S,
) -> impl Service<Request<B>, Response = Response<Body>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
where
    B: http_body::Body + Send + 'static,
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    ServiceBuilder::new()
        // Mark the client's credentials sensitive before anything can log
        // them (hyper, h2 and our Debug output hide sensitive values).
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
        ]))
        .map_request(move |req| Inbound::new(req, &conn))
        // A refusal becomes the contract's JSON answer, and only here.
        .layer(Rescue)
        // Counts and logs every refusal, debug endpoints' included (a
        // forwarded exchange records itself when its bodies end).
        .layer(Record)
        // /health, /ready, /metrics and the debug endpoints; the probe
        // reserve and the admin listener stop here.
        .layer(OwnEndpoints)
        // The decisions before forwarding, in this order (gates in a row
        // are one service: see `gate.rs`):
        .layer(Gated::layer((
            // The global max_in_flight: 503 at once, never a queue.
            Admission,
            // The one spelling of the path that is routed, classified and
            // forwarded (400), header limits (431), transfer codings
            // (501), loops (508).
            CanonicalTarget,
        )))
        // A ServiceAccount token (a JWT) verified, or looked up when it
        // was before: the account it names, for `Authenticate`.
        .layer(ServiceAccountToken)
        .layer(Gated::layer((
            // The tenant and client (401/403).
            Authenticate,
            // The route and the tenant's target for it (404).
            Route,
            // The client's access classes (403).
            Authorize,
            // Client rate (429), declared body size (413), tenant slots
            // (429).
            Limit,
        )))
        .service(innermost)
}
