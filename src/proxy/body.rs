//! `Metered`: a pass-through body that counts data bytes into the request's
//! `Exchange` and notes how the stream ended. Frames go through untouched
//! (trailers included); size hints are kept, so Content-Length survives.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use super::exchange::{Direction, Exchange};

/// Every response body the proxy sends: its own small JSON/text answers, or
/// an upstream's body streamed through.
pub type Body = Either<Full<Bytes>, Metered<Incoming>>;

pin_project! {
    pub struct Metered<B> {
        #[pin]
        inner: B,
        exchange: Arc<Exchange>,
        direction: Direction,
    }
}

impl<B> Metered<B> {
    pub fn new(inner: B, exchange: Arc<Exchange>, direction: Direction) -> Self {
        Metered {
            inner,
            exchange,
            direction,
        }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.add_bytes(*this.direction, data.len() as u64);
                }
                // hyper stops polling a sized body once it reports its end.
                if this.inner.is_end_stream() {
                    this.exchange.body_done(*this.direction);
                }
            }
            Poll::Ready(Some(Err(_))) => this.exchange.body_failed(*this.direction),
            Poll::Ready(None) => this.exchange.body_done(*this.direction),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
