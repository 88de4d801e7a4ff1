//! `Metered`: a pass-through body that counts data bytes into the request's
//! `Exchange`, notes how the stream ended, aborts it when no byte moves for
//! `idle_timeout`, and (for request bodies) when it grows past the route's
//! `max_body_bytes`. Frames go through untouched (trailers included); size
//! hints are kept, so Content-Length survives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::exchange::{BodyEnd, Direction, Exchange};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy sends: its own small JSON/text answers, or
/// an upstream's body streamed through.
pub type Body = Either<Full<Bytes>, Metered<Incoming>>;

/// Why the proxy cut a body.
#[derive(Debug, thiserror::Error)]
pub enum BodyCut {
    #[error("no body byte within idle_timeout = {}", humantime::format_duration(*.0))]
    Idle(Duration),
    #[error("request body larger than max_body_bytes = {0}")]
    TooLarge(u64),
}

pin_project! {
    pub struct Metered<B> {
        #[pin]
        inner: B,
        exchange: Arc<Exchange>,
        direction: Direction,
        idle: Duration,
        // Created on the first Pending only: bodies that never wait cost no timer.
        timer: Option<Pin<Box<Sleep>>>,
        limit: Option<u64>,
        seen: u64,
    }
}

impl<B> Metered<B> {
    pub fn new(
        inner: B,
        exchange: Arc<Exchange>,
        direction: Direction,
        idle: Duration,
        limit: Option<u64>,
    ) -> Self {
        Metered {
            inner,
            exchange,
            direction,
            idle,
            timer: None,
            limit,
            seen: 0,
        }
    }
}

impl<B> HttpBody for Metered<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    *this.seen += n;
                    this.exchange.add_bytes(*this.direction, n);
                    if let Some(t) = this.timer.as_mut() {
                        t.as_mut().reset(Instant::now() + *this.idle);
                    }
                    if let Some(limit) = *this.limit {
                        if *this.seen > limit {
                            this.exchange.body_ended(*this.direction, BodyEnd::TooLarge);
                            return Poll::Ready(Some(Err(BodyCut::TooLarge(limit).into())));
                        }
                    }
                }
                // hyper stops polling a sized body once it reports its end.
                if this.inner.is_end_stream() {
                    this.exchange.body_ended(*this.direction, BodyEnd::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.exchange.body_ended(*this.direction, BodyEnd::Failed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.exchange.body_ended(*this.direction, BodyEnd::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = *this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.exchange.body_ended(*this.direction, BodyEnd::Idle);
                    return Poll::Ready(Some(Err(BodyCut::Idle(idle).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
