//! The outbound TCP connector: direct, or through the egress proxy named by
//! `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (read once at start). https
//! upstreams go through a CONNECT tunnel (TLS then runs end to end); http
//! upstreams are sent to the proxy in absolute-form.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{Scheme, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub struct Egress {
    http: HttpConnector,
    proxies: Arc<Matcher>,
}

impl Egress {
    pub fn new(http: HttpConnector, proxies: Arc<Matcher>) -> Self {
        Egress { http, proxies }
    }
}

impl Service<Uri> for Egress {
    type Response = EgressStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<EgressStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        match self.proxies.intercept(&dst) {
            Some(via) if via.uri().scheme() != Some(&Scheme::HTTP) => {
                // Only plain-HTTP proxies (CONNECT for https) are supported.
                let scheme = via.uri().scheme_str().unwrap_or("none").to_string();
                Box::pin(async move {
                    Err(Box::new(TunnelFailed(format!(
                        "unsupported egress proxy scheme {scheme}"
                    ))) as BoxError)
                })
            }
            None => Box::pin(async move {
                let io = http.oneshot(dst).await?;
                Ok(EgressStream { io, proxied: false })
            }),
            Some(via) if dst.scheme() == Some(&Scheme::HTTPS) => {
                let mut tunnel = Tunnel::new(via.uri().clone(), http);
                if let Some(auth) = via.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    let io = tunnel
                        .oneshot(dst)
                        .await
                        .map_err(|e| Box::new(TunnelFailed(format!("{e:?}"))))?;
                    Ok(EgressStream { io, proxied: false })
                })
            }
            Some(via) => {
                let proxy = via.uri().clone();
                Box::pin(async move {
                    let io = http.oneshot(proxy).await?;
                    Ok(EgressStream { io, proxied: true })
                })
            }
        }
    }
}

/// hyper-util's `TunnelError` is not an `Error`; carry its description.
#[derive(Debug, thiserror::Error)]
#[error("egress proxy tunnel failed: {0}")]
struct TunnelFailed(String);

/// A TCP stream that tells the client whether it leads to an HTTP proxy
/// (then requests go out in absolute-form).
pub struct EgressStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for EgressStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for EgressStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for EgressStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
