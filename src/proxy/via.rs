//! `Via`: the one way a request reaches its upstream, for forwarded
//! requests and the proxy's own calls alike: a pool of the upstream's
//! (`Clients::Pooled`), or hyper-util's client for a plain-HTTP upstream
//! behind an egress proxy.

use std::error::Error as StdError;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::body::{Lease, OutBody};
use super::client::{Clients, HttpClient, ProxyPool};
use super::pool::SendError;

/// Where one request goes.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// hyper-util's client: the request's target is absolute.
    Client(&'a HttpClient),
    /// The upstream's pool: the request's target is origin-form.
    Pool(&'a Arc<ProxyPool>),
}

/// What a request needs of its connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Whatever the upstream offers (ALPN h2 or HTTP/1.1 over TLS,
    /// HTTP/1.1 in plain).
    Any,
    /// An HTTP/1.1 connection that can be upgraded.
    Upgrade,
    /// HTTP/2 with prior knowledge (gRPC to `http://`).
    H2c,
}

impl<'a> Via<'a> {
    /// The way to `clients`' upstream for a request with `need`.
    pub fn of(clients: &'a Clients, need: Need) -> Self {
        match (clients, need) {
            (Clients::Pooled { upgrades, .. }, Need::Upgrade) => Via::Pool(upgrades),
            (Clients::Pooled { h2c: Some(h2c), .. }, Need::H2c) => Via::Pool(h2c),
            (Clients::Pooled { pool, .. }, _) => Via::Pool(pool),
            (Clients::Proxied(clients), Need::H2c) => Via::Client(&clients.h2c),
            (Clients::Proxied(clients), _) => Via::Client(&clients.auto),
        }
    }

    /// Send `req`; a pooled answer comes with the lease its body must hold
    /// (and give back once the exchange is over).
    pub async fn send(
        self,
        req: Request<OutBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), SendFailed> {
        match self {
            Via::Pool(pool) => match pool.send(req).await {
                Ok((res, lease)) => Ok((res, Some(lease))),
                Err(e) => Err(SendFailed::Pool(e)),
            },
            Via::Client(client) => match client.request(req).await {
                Ok(res) => Ok((res, None)),
                Err(e) => Err(SendFailed::Client(e)),
            },
        }
    }
}

/// A failed send, from either way.
#[derive(Debug, thiserror::Error)]
pub enum SendFailed {
    #[error(transparent)]
    Client(hyper_util::client::legacy::Error),
    #[error(transparent)]
    Pool(SendError),
}

impl SendFailed {
    pub fn is_connect(&self) -> bool {
        match self {
            SendFailed::Client(e) => e.is_connect(),
            SendFailed::Pool(e) => e.is_connect(),
        }
    }

    pub fn as_error(&self) -> &(dyn StdError + 'static) {
        match self {
            SendFailed::Client(e) => e,
            SendFailed::Pool(e) => e,
        }
    }
}
