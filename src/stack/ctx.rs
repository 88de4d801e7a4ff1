//! What travels down the stack with a request: the connection's `Conn`,
//! the `Ctx` the layers fill in, and the `Refusal` a layer answers with.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request};
use hyper::body::Incoming;

use crate::access::AccessClass;
use crate::app::App;
use crate::error::ProxyError;
use crate::proxy::headers::ClientAddr;
use crate::proxy::Target;
use crate::revocation::{Seen, SessionWatch};
use crate::state::State;
use crate::telemetry::method_label;
use crate::tenant::InFlightGuard;

/// What a connection gives every request on it.
pub struct Conn {
    pub app: Arc<App>,
    /// The client's address and whether it came over TLS.
    pub peer: Arc<ClientAddr>,
    /// The subject CN of the connection's verified client certificate.
    pub peer_cn: Option<Arc<str>>,
    /// The identities this connection was used with (`revocation`).
    pub seen: Arc<Seen>,
    /// Set when the connection may only ask for the probe paths.
    pub probes_only: Option<ProbesOnly>,
}

/// Connections that serve only /health, /ready and /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbesOnly {
    /// Admitted to the reserve beyond `max_connections`: anything else is
    /// 503.
    Reserve,
    /// The admin listener: anything else is 404.
    Admin,
}

impl ProbesOnly {
    pub(super) fn refusal(self) -> ProxyError {
        match self {
            Self::Reserve => ProxyError::Overloaded {
                limit: "max_connections",
            },
            Self::Admin => ProxyError::NoRoute,
        }
    }
}

/// A request on its way down the stack (its body is hyper's `Incoming`
/// when served; layer tests use others).
pub struct Inbound<B = Incoming> {
    pub req: Request<B>,
    pub ctx: Ctx,
}

impl<B> Inbound<B> {
    #[inline]
    pub fn new(req: Request<B>, conn: &Arc<Conn>) -> Self {
        let ctx = Ctx {
            start: Instant::now(),
            state: conn.app.current(),
            conn: conn.clone(),
            method: method_label(req.method()),
            admitted: None,
            canonical_path: None,
            account: None,
            caller: None,
            session: None,
            route: None,
            target: None,
            path_and_query: String::new(),
            class: AccessClass::Read,
            tenant_slot: None,
        };
        Inbound { req, ctx }
    }

    /// The path that is routed and classified: the canonical one once
    /// `CanonicalTarget` has run (borrowed from the request when it was
    /// canonical already).
    pub fn path(&self) -> &str {
        self.ctx
            .canonical_path
            .as_deref()
            .unwrap_or_else(|| self.req.uri().path())
    }
}

/// What the layers learned about one request, in the order they learn it.
pub struct Ctx {
    pub conn: Arc<Conn>,
    /// The config-derived state the whole request runs on.
    pub state: Arc<State>,
    pub start: Instant,
    /// `method_label` of the request.
    pub method: &'static str,
    /// `Admission`: the global in-flight slot.
    pub admitted: Option<InFlightGuard>,
    /// `CanonicalTarget`: set when the canonical path differs from the
    /// request's (see `Inbound::path`).
    pub canonical_path: Option<String>,
    /// `ServiceAccountToken`: the account a verified bearer JWT names.
    pub account: Option<crate::kubernetes_auth::spec::ServiceAccount>,
    /// `Authenticate`.
    pub caller: Option<Caller>,
    /// `Authenticate`: for an upgrade by a revocable identity (boxed: rare,
    /// and a `Ctx` is moved through every layer).
    pub session: Option<Box<SessionWatch>>,
    /// `Route`: the route's index in `state.table`, then the tenant's
    /// target for it, the rewritten upstream target and its access class.
    pub route: Option<usize>,
    pub target: Option<Arc<Target>>,
    pub path_and_query: String,
    pub class: AccessClass,
    /// `Limit`: the tenant's in-flight slot.
    pub tenant_slot: Option<InFlightGuard>,
}

/// Who sent the request: the tenant, and the client when one was
/// identified (indices into `State::tenants` and the resolver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub tenant: usize,
    pub client: Option<usize>,
}

/// Tenant label of requests refused before a tenant was known.
const NO_TENANT: &str = "none";
/// Route label before a route matched.
const NO_ROUTE: &str = "none";

impl Ctx {
    /// The client entry of the caller, when a client was identified.
    pub fn client(&self) -> Option<&crate::tenant::ClientEntry> {
        self.state.resolver.client(self.caller?.client?)
    }

    /// The `tenant`, `route` and `upstream` labels of what is known so far.
    pub fn labels(&self) -> [&str; 3] {
        let tenant = self
            .caller
            .and_then(|c| self.state.tenants.get(c.tenant))
            .map_or(NO_TENANT, |t| &*t.name);
        let route = self.route.and_then(|i| self.state.table.route(i));
        let upstream = route
            .and_then(|r| self.state.table.upstreams().get(r.upstream))
            .map_or(crate::telemetry::metrics::NO_UPSTREAM, String::as_str);
        [tenant, route.map_or(NO_ROUTE, |r| &*r.prefix), upstream]
    }
}

/// A request answered with an error instead of an upstream response.
pub struct Refusal {
    pub error: ProxyError,
    /// The id its answer carries (`Record` gives one when it has none).
    pub request_id: Option<HeaderValue>,
    /// The request body was read to its end (or there was none): the
    /// client may reuse the connection.
    pub body_read: bool,
    /// For a refusal before any upstream exchange: what the layers had
    /// learned, for `Record`. `None`: the exchange recorded it already.
    pub local: Option<Box<Ctx>>,
}

impl Refusal {
    /// Refused by a layer, its request body unread.
    pub fn local(error: ProxyError, ctx: Ctx) -> Self {
        Refusal {
            error,
            request_id: None,
            body_read: false,
            local: Some(Box::new(ctx)),
        }
    }
}

impl From<crate::proxy::Failed> for Refusal {
    fn from(f: crate::proxy::Failed) -> Self {
        Refusal {
            error: f.error,
            request_id: Some(f.request_id),
            body_read: f.body_read,
            local: None,
        }
    }
}
