//! `UpstreamPool`: pooled connections to one upstream, used straight
//! through hyper's `client::conn` (no pool key hashing, no task per
//! request). Built at config load, one per (transport need, scheme,
//! authority), shared by every tenant's target on that upstream and kept
//! across reloads. Plain `http://` upstreams get one when no egress proxy
//! intercepts them; `https://` upstreams always (an egress proxy is a
//! CONNECT tunnel under TLS).
//!
//! - HTTP/1.1 (plain, or TLS where ALPN picks http/1.1): the request path
//!   takes the most recently used ready connection (a short vector behind
//!   an uncontended mutex), or connects. A connection goes back once its
//!   exchange is over (both bodies complete), when the response body that
//!   holds its `Lent` is dropped; a 101 keeps it (the tunnel's now).
//! - h2 (TLS where ALPN picks h2): a shared connection carries every
//!   request, up to `H2_STREAMS` open at once; past that the next request
//!   opens another. Each exchange holds a stream (counted) until it is
//!   over. Until the upstream is known to pick http/1.1, concurrent
//!   requests that find no live connection wait for one connect instead
//!   of each opening their own, and share its failure if it fails.
//!
//! A request the connection never wrote (it closed while idle, or was not
//! ready) is sent again on another connection; a request that was written
//! is never resent.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;

use super::connect_deadline::Connector;

mod dial;
mod failure;
mod held;

use failure::TryFailure;
pub use failure::{SendError, SharedFailure};
use held::{shared_h2, Conn, Got, Held, Idle, Slot, Stream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle HTTP/1.1 connections kept per pool; more are closed when they come
/// back.
const MAX_IDLE: usize = 512;

/// Streams carried on one h2 connection before the next request opens
/// another: RFC 9113 asks servers to allow at least 100 (nginx's default is
/// 128). A server allowing fewer makes the requests past its limit queue on
/// the connection, as they would with one connection.
const H2_STREAMS: usize = 100;

/// How a pool reaches its upstream.
pub enum Dialer {
    /// TCP to a plain-HTTP upstream: HTTP/1.1 (upgrades included).
    Plain(HttpConnector),
    /// TCP to a plain-HTTP upstream, HTTP/2 with prior knowledge (gRPC to
    /// `http://`): shared connections, as for h2 over TLS.
    H2c(HttpConnector),
    /// TLS (rustls, ALPN h2 and http/1.1) over TCP or an egress tunnel,
    /// set up within `connect_timeout`.
    Tls(Connector),
}

/// `B`: the request body type (`client::ProxyPool`: forwarded requests'
/// `Metered<Incoming>`).
pub struct UpstreamPool<B> {
    dialer: Dialer,
    /// `scheme://authority/`, what the dialer resolves and dials.
    dial: Uri,
    scheme: Scheme,
    authority: Authority,
    /// The Host header every HTTP/1.1 request on this pool carries (h2
    /// carries `:authority`).
    host: HeaderValue,
    idle_timeout: Duration,
    /// `H2_STREAMS` (lower in tests).
    h2_streams: usize,
    held: Mutex<Held<B>>,
    /// Held while a TLS connect is in flight, unless the upstream is known
    /// to pick http/1.1; holds the last such connect's failure.
    h2_connecting: tokio::sync::Mutex<Option<SharedFailure>>,
    /// How many gated connects have failed: a request that sees the count
    /// move while it waited for the gate fails with the failure held there.
    failed_connects: AtomicU64,
    /// The task closing connections idle past `idle_timeout` runs once any
    /// connection was made.
    reaper_started: std::sync::Once,
    /// One permit per open connection (`max_connections`): a request that
    /// finds none free and no idle connection waits up to `slot_wait`.
    slots: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
    slot_wait: Duration,
    /// Woken when a connection goes idle or closes.
    freed: Arc<tokio::sync::Notify>,
    /// Connections are served with upgrades (`upgradable`).
    upgradable: bool,
}

/// What one exchange holds of its connection until it is over (`Exchange`
/// gives it back): an HTTP/1.1 connection lent whole, or a stream on a
/// shared h2 one.
pub struct Lent<B>(Holds<B>);

enum Holds<B> {
    H1 {
        tx: http1::SendRequest<B>,
        pool: Weak<UpstreamPool<B>>,
    },
    /// Held, not read: dropping it lets the stream go.
    H2(#[allow(dead_code)] Stream),
}

impl<B> Lent<B> {
    /// The exchange is over and both bodies completed: an HTTP/1.1
    /// connection can carry the next request. (Dropped without this, it
    /// closes; an h2 stream is let go either way.)
    pub fn give_back(self) {
        if let Holds::H1 { tx, pool } = self.0 {
            if let Some(pool) = pool.upgrade() {
                pool.put(tx);
            }
        }
    }

    /// Whether this is a stream on a shared h2 connection.
    #[cfg(test)]
    fn is_h2(&self) -> bool {
        matches!(self.0, Holds::H2(_))
    }
}

/// The answer, and what of the connection to give back once the exchange
/// is over.
pub type Sent<B> = (Response<Incoming>, Lent<B>);

impl<B> UpstreamPool<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Send `req` (origin-form target, headers ready but for Host) on a
    /// pooled connection or a new one. A returned `Lent` connection must go
    /// back through `give_back` once the exchange is over, or be dropped.
    pub async fn send(self: &Arc<Self>, mut req: Request<B>) -> Result<Sent<B>, SendError> {
        loop {
            let (conn, fresh) = match self.take() {
                Some(conn) => (conn, false),
                // Boxed: connecting is rare, and its futures (resolver, TCP,
                // TLS, handshake) would otherwise make every request's
                // future larger.
                None => match Box::pin(self.idle_or_slot()).await? {
                    Got::Conn(conn) => (conn, false),
                    Got::Slot(slot) => (Box::pin(self.connect(slot)).await?, true),
                },
            };
            // The request is sent from here, not from a helper's future,
            // so it is moved once on the way (callgrind).
            let failed = match conn {
                Conn::H1(mut tx) => {
                    req.headers_mut().insert(HOST, self.host.clone());
                    match tx.try_send_request(req).await {
                        Ok(res) => return Ok((res, self.lend(tx))),
                        Err(e) => TryFailure::from(e),
                    }
                }
                Conn::H2(mut tx, stream) => {
                    // h2 takes the target as :scheme, :authority and :path.
                    let mut parts = std::mem::take(req.uri_mut()).into_parts();
                    parts.scheme = Some(self.scheme.clone());
                    parts.authority = Some(self.authority.clone());
                    *req.uri_mut() =
                        Uri::from_parts(parts).expect("scheme, authority and a path make a URI");
                    match tx.try_send_request(req).await {
                        Ok(res) => return Ok((res, Lent(Holds::H2(stream)))),
                        Err(e) => {
                            let failed = TryFailure::from(e);
                            if matches!(failed, TryFailure::Unsent(..)) {
                                self.forget_h2(&stream);
                            }
                            failed
                        }
                    }
                }
            };
            match failed {
                // Never written: closed while idle, or not ready. A new
                // connection that refuses it has failed.
                TryFailure::Unsent(unsent, _) if !fresh => req = unsent,
                TryFailure::Unsent(_, e) | TryFailure::Failed(e) => {
                    return Err(SendError::Request(e))
                }
            }
        }
    }

    /// A connection that went idle, or a free slot for a new one, waiting
    /// at most `slot_wait` (then `Busy`).
    async fn idle_or_slot(&self) -> Result<Got<B>, SendError> {
        let deadline = tokio::time::Instant::now() + self.slot_wait;
        loop {
            // Registered before looking, so a release between the look and
            // the wait still wakes this request.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(conn) = self.take() {
                return Ok(Got::Conn(conn));
            }
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Ok(Got::Slot(Slot {
                    _permit: permit,
                    freed: self.freed.clone(),
                }));
            }
            // A stream freed on a full h2 connection wakes nobody: look
            // again every 50 ms too.
            let next_look = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
            if tokio::time::timeout_at(next_look, freed).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(SendError::Busy {
                    max: self.max_connections,
                });
            }
        }
    }

    fn lend(self: &Arc<Self>, tx: http1::SendRequest<B>) -> Lent<B> {
        Lent(Holds::H1 {
            tx,
            pool: Arc::downgrade(self),
        })
    }

    /// The shared h2 connection if it is open, else the most recently used
    /// HTTP/1.1 connection that is ready now; closed and expired ones are
    /// dropped on the way.
    fn take(&self) -> Option<Conn<B>> {
        let mut held = self.lock_held();
        if let Some((tx, stream)) = shared_h2(&mut held, self.h2_streams) {
            return Some(Conn::H2(tx, stream));
        }
        let idle = &mut held.idle;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.tx.is_closed() || !entry.recent(self.idle_timeout) {
                idle.swap_remove(i);
            } else if entry.tx.is_ready() {
                return Some(Conn::H1(idle.remove(i).tx));
            }
        }
        None
    }

    /// Let go of the h2 connection `stream` is on: one of its senders
    /// refused a request without writing it, so it is closing.
    /// Unconditional, so a retry can never meet the same connection again.
    fn forget_h2(&self, stream: &Stream) {
        self.lock_held().h2.retain(|(_, open)| !stream.is_on(open));
    }

    /// Idle HTTP/1.1 connections held now.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.held.lock().map(|h| h.idle.len()).unwrap_or(0)
    }

    /// How many open shared h2 connections are held now.
    #[cfg(test)]
    fn h2_count(&self) -> usize {
        self.held
            .lock()
            .map(|h| h.h2.iter().filter(|(h2, _)| !h2.tx.is_closed()).count())
            .unwrap_or(0)
    }
}

impl<B> UpstreamPool<B> {
    /// `max_connections` open at once; a request waits at most
    /// `slot_wait` for one to free.
    pub fn new(
        dialer: Dialer,
        scheme: Scheme,
        authority: &Authority,
        idle_timeout: Duration,
        max_connections: usize,
        slot_wait: Duration,
    ) -> Self {
        let dial = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and a parsed authority make a URI");
        UpstreamPool {
            dialer,
            dial,
            scheme,
            authority: authority.clone(),
            host: HeaderValue::from_str(authority.as_str())
                .expect("a parsed authority is a valid header value"),
            idle_timeout,
            h2_streams: H2_STREAMS,
            held: Mutex::new(Held {
                idle: Vec::new(),
                h2: Vec::new(),
                alpn_h2: None,
            }),
            h2_connecting: tokio::sync::Mutex::new(None),
            failed_connects: AtomicU64::new(0),
            reaper_started: std::sync::Once::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            max_connections,
            slot_wait,
            freed: Arc::new(tokio::sync::Notify::new()),
            upgradable: false,
        }
    }

    /// For upgrades: its HTTP/1.1 connections can hand their bytes to
    /// `hyper::upgrade::on` after a 101. (Only this pool's: watching for
    /// an upgrade costs every exchange on a connection some instructions.)
    pub fn upgradable(mut self) -> Self {
        self.upgradable = true;
        self
    }

    /// The `max_connections` this pool was built with.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Open another h2 connection once each carries `streams` streams.
    #[cfg(test)]
    fn with_h2_streams(mut self, streams: usize) -> Self {
        self.h2_streams = streams;
        self
    }

    /// The held connections (a panic elsewhere never leaves them unusable).
    fn lock_held(&self) -> std::sync::MutexGuard<'_, Held<B>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, tx: http1::SendRequest<B>) {
        if tx.is_closed() {
            return;
        }
        let mut held = self.lock_held();
        if held.idle.len() < MAX_IDLE {
            held.idle.push(Idle::new(tx));
            drop(held);
            self.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests;
