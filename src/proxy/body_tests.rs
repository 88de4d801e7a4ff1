//! `Metered::take_ready_frame`: what the upstream connection has handed
//! over, or hands over within a scheduler turn, is taken ahead and given
//! out in order; nothing waits on bytes that have not arrived.

use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::*;
use crate::proxy::test_bodies::ChannelBody as Fed;
use crate::proxy::Target;

/// A body fed by a producer task through a one-slot channel: like hyper's
/// connection task, it hands over the next frame (or the end, by dropping
/// the sender) only once the previous one was taken.
fn metered(target: Arc<Target>, delay: Duration, chunks: &'static [&'static str]) -> Metered<Fed> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        for c in chunks {
            tx.send(Bytes::from_static(c.as_bytes())).await.unwrap();
        }
    });
    let exchange = Exchange::new(
        std::time::Instant::now(),
        0, // GET
        "loki".into(),
        target.meter.clone(),
        http::HeaderValue::from_static("id"),
        [None, None],
    );
    Metered::new(
        Fed(rx),
        exchange,
        Direction::Out,
        Duration::from_secs(5),
        None,
    )
}

async fn rest(mut body: Metered<Fed>) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        out.push(frame.unwrap().into_data().unwrap());
    }
    out
}

/// Runs the test as a task on a one-thread runtime, as the server runs a
/// connection; the target (which builds clients) is made outside it.
fn run<F, T>(test: T)
where
    T: FnOnce(Arc<Target>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let test = test(crate::proxy::headers::tests::target());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { tokio::spawn(test).await.unwrap() });
}

#[test]
fn a_small_body_is_taken_with_its_end() {
    run(|target| async {
        let mut body = metered(target, Duration::ZERO, &["hello"]);
        tokio::task::yield_now().await; // the producer has sent
        body.take_ready_frame().await;
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        // The end was taken ahead too: hyper ends the body with the chunk.
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    });
}

#[test]
fn frames_taken_ahead_come_out_first_and_in_order() {
    run(|target| async {
        let mut body = metered(target, Duration::ZERO, &["a", "b", "c", "d"]);
        tokio::task::yield_now().await;
        body.take_ready_frame().await;
        assert!(body.ahead[0].is_some() && body.ahead[1].is_some());
        assert_eq!(body.size_hint().lower(), 2);
        assert_eq!(rest(body).await, ["a", "b", "c", "d"]);
    });
}

#[test]
fn bytes_not_arrived_are_not_waited_for() {
    run(|target| async {
        let mut body = metered(target, Duration::from_millis(200), &["late"]);
        let start = tokio::time::Instant::now();
        body.take_ready_frame().await;
        assert!(start.elapsed() < Duration::from_millis(100));
        assert!(body.ahead[0].is_none());
        assert!(!body.is_end_stream());
        assert_eq!(rest(body).await, ["late"]);
    });
}
