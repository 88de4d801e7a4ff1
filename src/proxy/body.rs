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
use super::pool::Lent;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy sends: its own small JSON/text answers, or
/// an upstream's body streamed through.
pub type Body = Either<Full<Bytes>, Metered<Incoming>>;

/// What a response body holds of the pooled connection it came on.
pub type Lease = Lent<OutBody>;

/// Every request body the proxy sends upstream, so one pool type carries
/// both forwarded requests and the proxy's own calls.
// Not boxed: the large variant is the one every forwarded request takes,
// and a box would be an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum OutBody {
    /// A client's request body, streamed through and counted.
    Forwarded(Metered<Incoming>),
    /// A body the proxy wrote itself (rules, Alertmanager configuration,
    /// remote-write batches; empty for queries).
    Own(Full<Bytes>),
}

/// Why the proxy cut a body.
#[derive(Debug, thiserror::Error)]
pub enum BodyCut {
    #[error("no body byte within idle_timeout = {}", humantime::format_duration(*.0))]
    Idle(Duration),
    #[error("request body larger than max_body_bytes = {0}")]
    TooLarge(u64),
}

/// One poll's outcome, taken ahead of the caller and given out later.
type Polled = Option<Result<Frame<Bytes>, BoxError>>;

pin_project! {
    #[project = MeteredProj]
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
        // Outcomes polled ahead by `take_ready_frame`, given out in order.
        ahead: [Option<Polled>; 2],
        // A response body's hold on its pooled upstream connection.
        lease: Option<Lease>,
    }

    impl<B> PinnedDrop for Metered<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // An HTTP/1.1 connection goes back to its pool only at a message
            // boundary: both bodies went through whole. Otherwise (and for
            // a stream on a shared h2 connection) it is let go here.
            if let Some(lease) = this.lease.take() {
                if this.exchange.completed_both_ways() {
                    lease.give_back();
                }
            }
        }
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
            ahead: [None, None],
            lease: None,
        }
    }

    /// The response came on this pooled connection: the body gives it
    /// back (or lets it go) when it is dropped.
    pub fn holding(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }
}

impl<B> Metered<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Takes the body's first frame (and its end, if that is there too)
    /// when the upstream connection has it or gets it within one scheduler
    /// turn, never waiting on the network: the server then writes a small
    /// response's head, body and end in one write instead of three (the
    /// upstream connection's task hands data over only once the body is
    /// polled). A body whose bytes have not arrived streams as before.
    pub async fn take_ready_frame(&mut self) {
        let Some(first) = self.ready_within_a_turn().await else {
            return;
        };
        let more = matches!(first, Some(Ok(_))) && !self.inner.is_end_stream();
        self.ahead[0] = Some(first);
        // The connection's task reads on (and sees the end) only once the
        // frame was taken: one more turn for it.
        if more {
            self.ahead[1] = self.ready_within_a_turn().await;
        }
    }

    /// The next poll outcome, if the body has it now or after the tasks
    /// already queued (the upstream connection's among them) have run.
    async fn ready_within_a_turn(&mut self) -> Option<Polled> {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            match poll_counted(Pin::new(&mut *self).project(), cx, Wait::NotHere) {
                Poll::Ready(polled) => Poll::Ready(Some(polled)),
                Poll::Pending if !yielded => {
                    // Woken while running, a tokio task goes to the back of the
                    // run queue: the upstream connection's task runs first.
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Ready(None),
            }
        })
        .await
    }
}

/// Whether a `Pending` poll starts the idle timer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The caller waits for the next frame: `idle_timeout` runs.
    Idle,
    /// The caller looks ahead and will not wait here (no timer armed).
    NotHere,
}

/// Polls the inner body once: counts data bytes, enforces the size limit
/// and the idle timeout, and notes how the stream ended.
fn poll_counted<B>(this: MeteredProj<'_, B>, cx: &mut Context<'_>, wait: Wait) -> Poll<Polled>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let MeteredProj {
        mut inner,
        exchange,
        direction,
        idle,
        timer,
        limit,
        seen,
        ..
    } = this;
    match inner.as_mut().poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                *seen += n;
                exchange.add_bytes(*direction, n);
                if let Some(t) = timer.as_mut() {
                    t.as_mut().reset(Instant::now() + *idle);
                }
                if let Some(limit) = *limit {
                    if *seen > limit {
                        exchange.body_ended(*direction, BodyEnd::TooLarge);
                        return Poll::Ready(Some(Err(BodyCut::TooLarge(limit).into())));
                    }
                }
            }
            // hyper stops polling a sized body once it reports its end.
            if inner.is_end_stream() {
                exchange.body_ended(*direction, BodyEnd::Complete);
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(Some(Err(e))) => {
            exchange.body_ended(*direction, BodyEnd::Failed);
            Poll::Ready(Some(Err(e.into())))
        }
        Poll::Ready(None) => {
            exchange.body_ended(*direction, BodyEnd::Complete);
            Poll::Ready(None)
        }
        Poll::Pending if wait == Wait::NotHere => Poll::Pending,
        Poll::Pending => {
            let idle = *idle;
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            if timer.as_mut().poll(cx).is_ready() {
                exchange.body_ended(*direction, BodyEnd::Idle);
                return Poll::Ready(Some(Err(BodyCut::Idle(idle).into())));
            }
            Poll::Pending
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

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Polled> {
        let this = self.project();
        if let Some(first) = this.ahead[0].take() {
            this.ahead.swap(0, 1);
            return Poll::Ready(first);
        }
        poll_counted(this, cx, Wait::Idle)
    }

    fn is_end_stream(&self) -> bool {
        match &self.ahead[0] {
            Some(next) => next.is_none(),
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let mut ahead = 0;
        for polled in self.ahead.iter().flatten() {
            match polled {
                Some(Ok(frame)) => ahead += frame.data_ref().map_or(0, |d| d.len() as u64),
                // The end is known: exactly what is held.
                None => return SizeHint::with_exact(ahead),
                Some(Err(_)) => {}
            }
        }
        if ahead == 0 {
            return inner;
        }
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + ahead);
        }
        hint.set_lower(inner.lower() + ahead);
        hint
    }
}

impl HttpBody for OutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Both bodies are `Unpin`.
        match self.get_mut() {
            OutBody::Forwarded(b) => Pin::new(b).poll_frame(cx),
            OutBody::Own(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Forwarded(b) => b.is_end_stream(),
            OutBody::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Forwarded(b) => b.size_hint(),
            OutBody::Own(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
