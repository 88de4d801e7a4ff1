//! How a pool opens a connection: TCP, h2c or TLS by its `Dialer`, the
//! HTTP/1.1 or h2 handshake, and the gate that makes concurrent TLS
//! connects wait for one while the upstream may pick h2; and the reaper
//! that closes what stayed idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::ServiceExt as _;

use super::failure::SharedFailure;
use super::held::{shared_h2, Conn, Idle, Slot, Stream};
use super::{BoxError, Dialer, SendError, UpstreamPool};

impl<B> UpstreamPool<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A new connection. Unless the upstream is known to pick http/1.1, TLS
    /// connects go one at a time: when it picks h2, one connect serves
    /// every request waiting for it, and when it fails, every request that
    /// waited for it fails with its error (as Envoy fails a pool's pending
    /// streams) instead of each trying again in turn, `connect_timeout`
    /// after `connect_timeout`.
    pub(super) async fn connect(self: &Arc<Self>, slot: Slot) -> Result<Conn<B>, SendError> {
        let known_h1 = || self.lock_held().alpn_h2 == Some(false);
        if !matches!(self.dialer, Dialer::Tls(_)) || known_h1() {
            return self.dial(slot).await;
        }
        let failures_before = self.failed_connects.load(Ordering::Acquire);
        let mut gate = self.h2_connecting.lock().await;
        if let Some((tx, stream)) = shared_h2(&mut self.lock_held(), self.h2_streams) {
            return Ok(Conn::H2(tx, stream));
        }
        if known_h1() {
            // The connect this one waited for found http/1.1: connect in
            // parallel from here on.
            drop(gate);
            return self.dial(slot).await;
        }
        if self.failed_connects.load(Ordering::Acquire) != failures_before {
            if let Some(failed) = gate.as_ref() {
                return Err(SendError::Connect(Box::new(failed.clone())));
            }
        }
        match self.dial(slot).await {
            Err(SendError::Connect(e)) => {
                let failed = SharedFailure(Arc::new(e));
                *gate = Some(failed.clone());
                self.failed_connects.fetch_add(1, Ordering::Release);
                Err(SendError::Connect(Box::new(failed)))
            }
            done => {
                *gate = None;
                done
            }
        }
    }

    /// Dial and handshake one connection.
    pub(super) async fn dial(self: &Arc<Self>, slot: Slot) -> Result<Conn<B>, SendError> {
        let connect = |e: BoxError| SendError::Connect(e);
        let conn = match &self.dialer {
            Dialer::Plain(c) => {
                let io = c
                    .clone()
                    .oneshot(self.dial.clone())
                    .await
                    .map_err(|e| connect(e.into()))?;
                self.handshake_h1(io, slot).await?
            }
            Dialer::H2c(c) => {
                let io = c
                    .clone()
                    .oneshot(self.dial.clone())
                    .await
                    .map_err(|e| connect(e.into()))?;
                self.handshake_h2(io, slot).await?
            }
            Dialer::Tls(c) => {
                let io = c
                    .clone()
                    .oneshot(self.dial.clone())
                    .await
                    .map_err(connect)?;
                if io.connected().is_negotiated_h2() {
                    let conn = self.handshake_h2(io, slot).await?;
                    self.lock_held().alpn_h2 = Some(true);
                    conn
                } else {
                    self.lock_held().alpn_h2 = Some(false);
                    self.handshake_h1(io, slot).await?
                }
            }
        };
        self.reaper_started.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        });
        Ok(conn)
    }

    /// An h2 connection, shared from now on.
    pub(super) async fn handshake_h2<T>(&self, io: T, slot: Slot) -> Result<Conn<B>, SendError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream h2 connection ended with an error");
            }
            drop(slot);
        });
        let open = Arc::new(AtomicUsize::new(0));
        let stream = Stream::on(&open);
        self.lock_held().h2.push((Idle::new(tx.clone()), open));
        Ok(Conn::H2(tx, stream))
    }

    /// An HTTP/1.1 connection. In an `upgradable` pool a 101 hands its
    /// bytes to `hyper::upgrade::on` (the exchange never gives it back).
    pub(super) async fn handshake_h1<T>(&self, io: T, slot: Slot) -> Result<Conn<B>, SendError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let upgradable = self.upgradable;
        tokio::spawn(async move {
            let served = if upgradable {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            drop(slot);
        });
        Ok(Conn::H1(tx))
    }
}

/// Closes connections idle for `idle_timeout` (HTTP/1.1 connections not
/// taken, an h2 connection no request took), until the pool is gone.
async fn reap<B>(pool: Weak<UpstreamPool<B>>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut held = pool.lock_held();
        held.idle
            .retain(|e| !e.tx.is_closed() && e.recent(idle_timeout));
        held.h2.retain(|(h2, streams)| {
            !h2.tx.is_closed() && (h2.recent(idle_timeout) || streams.load(Ordering::Relaxed) > 0)
        });
    }
}
