//! `H1Pool`: keep-alive HTTP/1.1 connections to one plain-`http://`
//! upstream that no egress proxy intercepts, used straight through hyper's
//! `client::conn::http1`. Built at config load, one per (transport need,
//! authority), shared by every tenant's target on that authority and kept
//! across reloads.
//!
//! The request path takes the most recently used ready connection (a short
//! vector behind an uncontended mutex, no key hashing), or connects. A
//! connection goes back once its exchange is over: both bodies complete,
//! from `Exchange`'s drop. A request the connection never wrote (it closed
//! while idle, or was not ready) is sent again on another connection; a
//! request that was written is never resent.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt as _;

use super::body::Metered;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept per pool; more are closed when they come back.
const MAX_IDLE: usize = 512;

/// `B`: the request body type (every forwarded request has `Metered<Incoming>`).
pub struct H1Pool<B = Metered<Incoming>> {
    connector: HttpConnector,
    /// `http://authority`, what the connector resolves and dials.
    dial: Uri,
    /// The Host header every request on this pool carries.
    host: HeaderValue,
    idle_timeout: Duration,
    /// Most recently returned last.
    idle: Mutex<Vec<Idle<B>>>,
    /// The task closing connections idle past `idle_timeout` runs once any
    /// connection was made.
    reaper_started: std::sync::Once,
}

struct Idle<B> {
    tx: http1::SendRequest<B>,
    since: Instant,
}

impl<B> Idle<B> {
    /// Still open and idle for less than `idle_timeout`.
    fn alive(&self, idle_timeout: Duration) -> bool {
        !self.tx.is_closed() && self.since.elapsed() < idle_timeout
    }
}

/// Why a pooled send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(#[source] BoxError),
    #[error(transparent)]
    Request(hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// A connection lent to one exchange; `Exchange` gives it back.
pub struct Lent<B = Metered<Incoming>> {
    tx: http1::SendRequest<B>,
    pool: Weak<H1Pool<B>>,
}

impl<B> Lent<B> {
    /// The exchange is over and both bodies completed: the connection can
    /// carry the next request.
    pub fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.tx);
        }
    }
}

impl<B> H1Pool<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub fn new(connector: HttpConnector, authority: &Authority, idle_timeout: Duration) -> Self {
        let dial = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and a parsed authority make a URI");
        H1Pool {
            connector,
            dial,
            host: HeaderValue::from_str(authority.as_str())
                .expect("a parsed authority is a valid header value"),
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            reaper_started: std::sync::Once::new(),
        }
    }

    /// Send `req` (origin-form target, headers ready but for Host) on an
    /// idle connection or a new one. The `Lent` connection must go back
    /// through `give_back` once the exchange is over, or be dropped.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<B>,
    ) -> Result<(Response<Incoming>, Lent<B>), SendError> {
        req.headers_mut().insert(HOST, self.host.clone());
        while let Some(mut tx) = self.take() {
            match tx.try_send_request(req).await {
                Ok(res) => return Ok((res, self.lend(tx))),
                Err(mut e) => match e.take_message() {
                    // Never written: closed while idle, or not ready.
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        // Boxed: connecting is rare, and its futures (resolver, TCP,
        // handshake) would otherwise make every request's future larger.
        let mut tx = Box::pin(self.connect()).await?;
        match tx.send_request(req).await {
            Ok(res) => Ok((res, self.lend(tx))),
            Err(e) => Err(SendError::Request(e)),
        }
    }

    fn lend(self: &Arc<Self>, tx: http1::SendRequest<B>) -> Lent<B> {
        Lent {
            tx,
            pool: Arc::downgrade(self),
        }
    }

    /// The most recently used connection that is ready now; closed and
    /// expired ones are dropped on the way.
    fn take(&self) -> Option<http1::SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if !entry.alive(self.idle_timeout) {
                idle.swap_remove(i);
            } else if entry.tx.is_ready() {
                return Some(idle.remove(i).tx);
            }
        }
        None
    }

    async fn connect(self: &Arc<Self>) -> Result<http1::SendRequest<B>, SendError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.dial.clone())
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        self.reaper_started.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        });
        Ok(tx)
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

impl<B> H1Pool<B> {
    fn put(&self, tx: http1::SendRequest<B>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }
}

/// Closes connections idle for `idle_timeout`, until the pool is gone.
async fn reap<B>(pool: Weak<H1Pool<B>>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|e| e.alive(idle_timeout));
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
