//! `ConnectDeadline`: `connect_timeout` over the whole connection set-up,
//! not just the TCP connect: DNS, TCP, the egress proxy's CONNECT tunnel
//! and the TLS handshake together, as nginx's `proxy_connect_timeout` and
//! Envoy's `connect_timeout` bound theirs. An upstream that accepts TCP
//! and then stalls the handshake answers 504 `connect_timeout`, instead of
//! holding the request until `timeout`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How every https (and egress-proxied) connection is made: rustls over TCP
/// or an egress tunnel, the whole set-up within `connect_timeout`.
pub type Connector = ConnectDeadline<hyper_rustls::HttpsConnector<super::egress::Egress>>;

/// A connector whose every connect fails with `io::ErrorKind::TimedOut`
/// (what the error mapping reads as `connect_timeout`) once `limit` has
/// passed.
#[derive(Clone)]
pub struct ConnectDeadline<C> {
    inner: C,
    limit: Duration,
}

impl<C> ConnectDeadline<C> {
    pub fn new(inner: C, limit: Duration) -> Self {
        ConnectDeadline { inner, limit }
    }
}

impl<C> Service<Uri> for ConnectDeadline<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    // Boxed: connects are rare next to requests, and the inner connector's
    // future is boxed already.
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(done) => done.map_err(Into::into),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection set-up (TCP, tunnel, TLS) did not finish within connect_timeout",
                )
                .into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    /// A connector whose connect takes `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<Uri> for Slow {
        type Response = &'static str;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<&'static str>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _dst: Uri) -> Self::Future {
            let delay = self.0;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok("connected")
            })
        }
    }

    #[tokio::test]
    async fn a_set_up_past_the_limit_fails_as_timed_out() {
        let dst: Uri = "https://upstream.example/".parse().unwrap();
        let slow = ConnectDeadline::new(Slow(Duration::from_secs(60)), Duration::from_millis(50));
        let err = slow.oneshot(dst.clone()).await.unwrap_err();
        let io = err.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);

        let quick = ConnectDeadline::new(Slow(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(quick.oneshot(dst).await.unwrap(), "connected");
    }
}
