//! One accepted connection: the bounded read of its first bytes, then
//! hyper-util's auto builder serving `stack::inbound` on it until it ends,
//! the server drains, or a reload revokes a credential it used; and the
//! short 503 for a connection past `max_connections`.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

use crate::app::App;
use crate::preface::read_preface;
use crate::proxy::headers::ClientAddr;
use crate::revocation::{revoked, Seen};
use crate::stack::{inbound, Conn, ProbesOnly};
use crate::tenant::InFlightGuard;

/// One accepted connection, plain or after its TLS handshake.
pub(super) struct Connection {
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(super) watcher: hyper_util::server::graceful::Watcher,
    pub(super) app: Arc<App>,
    /// The client's address, and whether it came over TLS.
    pub(super) peer: ClientAddr,
    /// How long the client may take over its TLS handshake, and then over
    /// the bytes that tell HTTP/1.1 from h2 (`header_read_timeout`).
    pub(super) first_bytes_timeout: Duration,
    /// Admitted to the probe reserve: /health, /ready and /metrics only.
    pub(super) probes_only: Option<ProbesOnly>,
    /// The connection's `max_connections` slot, freed when it closes.
    pub(super) _slot: Option<InFlightGuard>,
}

/// Beyond `max_connections` on a plaintext listener: a short 503 and
/// close, instead of an unbounded backlog. (A TLS listener closes without
/// an answer: a handshake costs what the limit is there to save.)
pub(super) async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str =
        r#"{"error":"overloaded: max_connections reached","status":503,"limit":"max_connections"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

impl Connection {
    /// `chain`: the client's verified certificate chain, when it sent one.
    pub(super) async fn serve<I>(
        self,
        io: I,
        peer_cn: Option<Arc<str>>,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let client = self.peer;
        let peer = client.addr;
        let io = match tokio::time::timeout(self.first_bytes_timeout, read_preface(io)).await {
            Ok(Ok(Some(io))) => io,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first request");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no request within header_read_timeout; closing");
                return;
            }
        };
        let seen = Arc::new(Seen::with_chain(chain));
        let states = self.app.subscribe();
        let stack = inbound(Arc::new(Conn {
            app: self.app,
            peer: Arc::new(client),
            peer_cn,
            seen: seen.clone(),
            probes_only: self.probes_only,
        }));
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(stack))
            .into_owned();
        tokio::select! {
            served = self.watcher.watch(conn) => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            // A reload revoked an identity this connection was used with:
            // dropping the connection closes it, streams and all.
            _ = revoked(states, move |s| seen.all_hold(s)) => {
                tracing::info!(%peer, "connection closed: a reload revoked its client credentials");
            }
        }
    }
}
