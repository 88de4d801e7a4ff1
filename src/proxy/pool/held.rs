//! What a pool holds and lends: idle HTTP/1.1 connections, shared h2
//! connections and their open streams, and a connection's slot under
//! `max_connections`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};

/// A connection's place under `max_connections`, held for its lifetime;
/// letting go wakes the requests waiting for one.
pub(super) struct Slot {
    pub(super) _permit: tokio::sync::OwnedSemaphorePermit,
    pub(super) freed: Arc<tokio::sync::Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_waiters();
    }
}

/// What a request waiting under the cap got.
pub(super) enum Got<B> {
    Conn(Conn<B>),
    Slot(Slot),
}

pub(super) struct Held<B> {
    /// Idle HTTP/1.1 connections, most recently returned last.
    pub(super) idle: Vec<Idle<http1::SendRequest<B>>>,
    /// The shared h2 connections, each with when a request last took it
    /// and its open streams; a new one is opened when every one carries
    /// `h2_streams`.
    pub(super) h2: Vec<(Idle<http2::SendRequest<B>>, Arc<AtomicUsize>)>,
    /// What ALPN picked on this pool's last new TLS connection: h2
    /// (`Some(true)`), http/1.1, or not known yet.
    pub(super) alpn_h2: Option<bool>,
}

/// A connection and since when it has been idle.
pub(super) struct Idle<T> {
    pub(super) tx: T,
    pub(super) since: Instant,
}

impl<T> Idle<T> {
    pub(super) fn new(tx: T) -> Self {
        Idle {
            tx,
            since: Instant::now(),
        }
    }

    /// Idle for less than `idle_timeout` (open or not).
    pub(super) fn recent(&self, idle_timeout: Duration) -> bool {
        self.since.elapsed() < idle_timeout
    }
}

/// One stream on a shared h2 connection, counted in the connection's open
/// streams until it drops.
pub(super) struct Stream(Arc<AtomicUsize>);

impl Stream {
    pub(super) fn on(open: &Arc<AtomicUsize>) -> Stream {
        open.fetch_add(1, Ordering::Relaxed);
        Stream(open.clone())
    }

    pub(super) fn is_on(&self, open: &Arc<AtomicUsize>) -> bool {
        Arc::ptr_eq(&self.0, open)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection to send on.
pub(super) enum Conn<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>, Stream),
}

/// A clone of the first open shared h2 connection with fewer than
/// `limit` streams open, and one more stream on it (marked as just used);
/// closed ones are dropped.
pub(super) fn shared_h2<B>(
    held: &mut Held<B>,
    limit: usize,
) -> Option<(http2::SendRequest<B>, Stream)> {
    held.h2.retain(|(h2, _)| !h2.tx.is_closed());
    let (h2, open) = held
        .h2
        .iter_mut()
        .find(|(_, open)| open.load(Ordering::Relaxed) < limit)?;
    h2.since = Instant::now();
    Some((h2.tx.clone(), Stream::on(open)))
}
