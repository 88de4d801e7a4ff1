//! HTTP/1.1 Upgrade passthrough (WebSocket: Loki's `/loki/api/v1/tail`).
//! The upgrade request is rewritten and gets the injected credentials like
//! any other, goes out on the HTTP/1-only client, and when the upstream
//! answers 101 the two upgraded connections are spliced until either side
//! closes or no byte moves for the route's `upgrade_idle_timeout`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::{Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::body::Body;
use super::exchange::{Direction, Exchange};
use super::headers;

/// The protocol asked for, when this is an HTTP/1.1 WebSocket upgrade.
/// Nothing else is passed: an `h2c` (or any other) upgrade would open a
/// tunnel whose requests the proxy never sees, so its `Upgrade` header is
/// dropped with the other hop-by-hop headers and the request is served as
/// plain HTTP/1.1.
pub fn requested(headers: &HeaderMap, version: Version) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let mut upgrades = headers.get_all(UPGRADE).iter();
    let websocket = match (upgrades.next(), upgrades.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    if !websocket {
        return None;
    }
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

/// Put the upgrade headers back after the hop-by-hop rules removed them.
pub fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// The upstream switched protocols: answer the client 101 and splice.
pub fn switch(
    mut res: Response<Incoming>,
    inbound: OnUpgrade,
    exchange: Arc<Exchange>,
    idle: Duration,
    session: Option<Box<crate::revocation::SessionWatch>>,
) -> Response<Body> {
    let outbound = hyper::upgrade::on(&mut res);
    let (mut parts, _) = res.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    headers::prepare_response(&mut parts.headers);
    if let Some(p) = protocol {
        restore(&mut parts.headers, p);
    }
    exchange.set_status(101);
    exchange.response_has_no_body();
    tokio::spawn(async move {
        let (client, upstream) = match (inbound.await, outbound.await) {
            (Ok(c), Ok(u)) => (TokioIo::new(c), TokioIo::new(u)),
            (c, u) => {
                tracing::debug!(
                    client_ok = c.is_ok(),
                    upstream_ok = u.is_ok(),
                    "upgrade did not complete"
                );
                return;
            }
        };
        let sessions = &exchange.metrics().upgraded_sessions;
        sessions.inc();
        let revoked = async move {
            match session {
                Some(watch) => watch.revoked().await,
                None => std::future::pending().await,
            }
        };
        let (up, down, end) = splice(client, upstream, idle, revoked).await;
        sessions.dec();
        exchange.add_bytes(Direction::In, up);
        exchange.add_bytes(Direction::Out, down);
        tracing::debug!(
            bytes_up = up,
            bytes_down = down,
            end,
            "upgraded session ended"
        );
        // Dropping the exchange writes the access line for the session.
    });
    Response::from_parts(parts, Either::Left(Full::new(Bytes::new())))
}

/// Copy both ways until both sides have closed, an error, `idle` with no
/// byte in either direction, or `stop`. A side's EOF is passed on as a write shutdown
/// (half-close). Returns bytes client->upstream, upstream->client, and why
/// it ended.
pub async fn splice<A, B>(
    mut a: A,
    mut b: B,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> (u64, u64, &'static str)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::pin!(stop);
    let mut buf_a = vec![0u8; 16 * 1024];
    let mut buf_b = vec![0u8; 16 * 1024];
    let (mut a_open, mut b_open) = (true, true);
    let (mut up, mut down) = (0u64, 0u64);
    let end = loop {
        if !a_open && !b_open {
            break "closed";
        }
        tokio::select! {
            // A reload revoked the session's identity.
            _ = &mut stop => break "revoked",
            r = a.read(&mut buf_a), if a_open => match r {
                Ok(0) => {
                    a_open = false;
                    let _ = b.shutdown().await;
                }
                Ok(n) => {
                    if b.write_all(&buf_a[..n]).await.is_err() {
                        break "upstream write failed";
                    }
                    up += n as u64;
                }
                Err(_) => break "client read failed",
            },
            r = b.read(&mut buf_b), if b_open => match r {
                Ok(0) => {
                    b_open = false;
                    let _ = a.shutdown().await;
                }
                Ok(n) => {
                    if a.write_all(&buf_b[..n]).await.is_err() {
                        break "client write failed";
                    }
                    down += n as u64;
                }
                Err(_) => break "upstream read failed",
            },
            _ = tokio::time::sleep(idle) => break "upgrade_idle_timeout",
        }
    };
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
    (up, down, end)
}
