//! `Rescue`: the one place a `ProxyError` becomes the contract's JSON
//! response. An answer given while the request body is still unread says
//! `Connection: close` on HTTP/1.x, so a pooled client never reuses a
//! connection whose next bytes are that body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Response, Version};
use tower::{Layer, Service};

use super::ctx::{Inbound, Refusal};
use crate::proxy::headers::close_if_body_unread;
use crate::proxy::Body;

#[derive(Debug, Clone, Copy)]
pub struct Rescue;

impl<S> Layer<S> for Rescue {
    type Service = RescueService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RescueService { inner }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RescueService<S> {
    inner: S,
}

impl<S, B> Service<Inbound<B>> for RescueService<S>
where
    B: http_body::Body,
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Rescued<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The layers below are always ready (none of them queues).
        match self.inner.poll_ready(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn call(&mut self, call: Inbound<B>) -> Self::Future {
        Rescued {
            version: call.req.version(),
            has_body: !call.req.body().is_end_stream(),
            inner: self.inner.call(call),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Rescued<F> {
        #[pin]
        inner: F,
        version: Version,
        has_body: bool,
    }
}

impl<F> Future for Rescued<F>
where
    F: Future<Output = Result<Response<Body>, Refusal>>,
{
    type Output = Result<Response<Body>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let refusal = match std::task::ready!(this.inner.poll(cx)) {
            Ok(res) => return Poll::Ready(Ok(res)),
            Err(r) => r,
        };
        Poll::Ready(Ok(answer(refusal, *this.version, *this.has_body)))
    }
}

/// The contract's answer to `refusal`.
fn answer(refusal: Refusal, version: Version, has_body: bool) -> Response<Body> {
    let mut res = refusal
        .error
        .to_response(refusal.request_id.as_ref())
        .map(Body::Left);
    close_if_body_unread(res.headers_mut(), version, has_body && !refusal.body_read);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProxyError;
    use http::header::CONNECTION;

    fn refusal(body_read: bool) -> Refusal {
        Refusal {
            error: ProxyError::NoRoute,
            request_id: Some(http::HeaderValue::from_static("r-1")),
            body_read,
            local: None,
        }
    }

    #[test]
    fn a_refusal_is_the_contracts_json_with_its_request_id() {
        let res = answer(refusal(false), Version::HTTP_11, false);
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(res.headers().get(CONNECTION).is_none());
        let Body::Left(full) = res.into_body() else {
            panic!("a local answer")
        };
        let bytes = futures_body(full);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["status"], 404);
        assert_eq!(json["request_id"], "r-1");
    }

    #[test]
    fn an_unread_body_closes_an_http1_connection_only() {
        let close = |version, has_body, read| {
            answer(refusal(read), version, has_body)
                .headers()
                .get(CONNECTION)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            close(Version::HTTP_11, true, false).as_deref(),
            Some("close")
        );
        assert_eq!(close(Version::HTTP_11, true, true), None);
        assert_eq!(close(Version::HTTP_11, false, false), None);
        assert_eq!(close(Version::HTTP_2, true, false), None);
    }

    fn futures_body(full: http_body_util::Full<bytes::Bytes>) -> bytes::Bytes {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(full.collect()).unwrap().to_bytes()
    }
}
