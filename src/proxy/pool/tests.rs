use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::proxy::test_bodies::ChannelBody;
use http::Response;
use hyper::body::Incoming;
use std::time::Instant;

mod tls;

/// An upstream on 127.0.0.1:0 that runs `serve` on each connection it
/// accepts, in a task of its own; counts connections.
async fn accept_each<F, Fut>(serve: F) -> (Authority, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            tokio::spawn(serve(s));
        }
    });
    (authority, accepted)
}

/// Reads into `buf` until it holds a whole request head; where the head
/// ends, or `None` if the client closed first.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A keep-alive upstream answering with the Host and target it got.
async fn upstream() -> (Authority, Arc<AtomicUsize>) {
    accept_each(|s| async move {
        let svc = service_fn(|req: Request<Incoming>| async move {
            let host = req.headers()[HOST].to_str().unwrap().to_string();
            let target = req.uri().to_string();
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{host} {target}"
            )))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
            .await;
    })
    .await
}

fn pool<B>(authority: &Authority, idle: Duration) -> Arc<UpstreamPool<B>> {
    Arc::new(UpstreamPool::new(
        Dialer::Plain(HttpConnector::new()),
        Scheme::HTTP,
        authority,
        idle,
        256,
        Duration::from_secs(5),
    ))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

async fn body(res: Response<Incoming>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_given_back_connection_carries_the_next_request() {
    let (authority, accepted) = upstream().await;
    let pool = pool(&authority, Duration::from_secs(90));
    for i in 0..5 {
        let (res, lent) = pool.send(get(&format!("/q?i={i}"))).await.unwrap();
        // The pool sets the upstream's Host; the target goes as given.
        assert_eq!(body(res).await, format!("{authority} /q?i={i}"));
        assert!(!lent.is_h2());
        lent.give_back();
        // The connection's task finishes the exchange on its next turn.
        tokio::task::yield_now().await;
    }
    assert_eq!(accepted.load(SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_connection_not_given_back_is_not_reused() {
    let (authority, accepted) = upstream().await;
    let pool = pool(&authority, Duration::from_secs(90));
    for _ in 0..3 {
        let (res, lent) = pool.send(get("/")).await.unwrap();
        body(res).await;
        // An exchange cut short drops its connection instead.
        drop(lent);
    }
    assert_eq!(accepted.load(SeqCst), 3);
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (authority, accepted) = upstream().await;
    let pool = pool(&authority, Duration::from_millis(200));
    let (res, lent) = pool.send(get("/")).await.unwrap();
    body(res).await;
    assert!(!lent.is_h2());
    lent.give_back();
    assert_eq!(pool.idle_count(), 1);
    // The reaper runs every 100 ms here; past 200 ms idle it is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.idle_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle connection was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next request connects again.
    let (res, _) = pool.send(get("/")).await.unwrap();
    body(res).await;
    assert_eq!(accepted.load(SeqCst), 2);
}

/// A raw upstream that answers one request per connection with a 2-byte
/// `ok` (keep-alive, as far as the client can tell), reads the request body
/// whole after answering, closes once `close` gives it a permit, and
/// reports how many body bytes it got.
async fn answer_then_close(
    close: Arc<tokio::sync::Semaphore>,
) -> (
    Authority,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::Receiver<usize>,
) {
    let (done, done_rx) = tokio::sync::mpsc::channel(8);
    let (authority, accepted) = accept_each(move |mut s| {
        let (done, close) = (done.clone(), close.clone());
        async move {
            let mut buf = Vec::new();
            let head_end = read_head(&mut s, &mut buf)
                .await
                .expect("closed before a request head");
            let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            let mut got = buf.len() - head_end;
            let mut chunk = [0u8; 4096];
            while got < length {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the request body was cut at {got} of {length}");
                got += n;
            }
            close.acquire().await.unwrap().forget();
            drop(s);
            let _ = done.send(got).await;
        }
    })
    .await;
    (authority, accepted, done_rx)
}

#[tokio::test]
async fn a_request_on_a_connection_the_upstream_closed_while_idle_goes_on_a_new_one() {
    let close = Arc::new(tokio::sync::Semaphore::new(0));
    let (authority, accepted, mut closed) = answer_then_close(close.clone()).await;
    let pool = pool(&authority, Duration::from_secs(90));
    let (res, lent) = pool.send(get("/a")).await.unwrap();
    assert_eq!(body(res).await, "ok");
    assert!(!lent.is_h2());
    lent.give_back();
    assert_eq!(pool.idle_count(), 1, "the answer looked keep-alive");
    close.add_permits(2);
    assert_eq!(closed.recv().await, Some(0));
    // The pooled connection is closed by now; the request is never
    // written on it, so it goes on a new connection instead of failing.
    let (res, _) = pool.send(get("/b")).await.unwrap();
    assert_eq!(body(res).await, "ok");
    assert_eq!(accepted.load(SeqCst), 2);
}

#[tokio::test]
async fn a_request_body_still_streaming_when_the_answer_ends_is_still_sent_whole() {
    let close = Arc::new(tokio::sync::Semaphore::new(1));
    let (authority, _, mut received) = answer_then_close(close).await;
    let pool: Arc<UpstreamPool<ChannelBody>> = pool(&authority, Duration::from_secs(90));
    let (chunks, rx) = tokio::sync::mpsc::channel(1);
    let req = Request::post("/push")
        .header("content-length", "300000")
        .body(ChannelBody(rx))
        .unwrap();
    chunks.send(Bytes::from(vec![b'x'; 100_000])).await.unwrap();
    // The upstream answers before the body is all there; the client reads
    // the answer whole, and the exchange lets go of the connection (it
    // gives back only one whose bodies both completed).
    let (res, lent) = pool.send(req).await.unwrap();
    assert_eq!(body(res).await, "ok");
    drop(lent);
    assert_eq!(pool.idle_count(), 0);
    // The rest of the body still reaches the upstream.
    for _ in 0..2 {
        chunks.send(Bytes::from(vec![b'y'; 100_000])).await.unwrap();
    }
    drop(chunks);
    assert_eq!(received.recv().await, Some(300_000));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    drop(listener);
    let sent = pool(&authority, Duration::from_secs(90))
        .send(get("/"))
        .await;
    let Err(err) = sent else {
        panic!("a closed port answered")
    };
    assert!(err.is_connect(), "{err}");
}

#[tokio::test]
async fn chunked_answers_keep_their_connection() {
    let (authority, accepted) = accept_each(|mut s| async move {
        let mut buf = Vec::new();
        while let Some(head_end) = read_head(&mut s, &mut buf).await {
            buf.drain(..head_end);
            s.write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        }
    })
    .await;
    let pool = pool(&authority, Duration::from_secs(90));
    for _ in 0..50 {
        let (res, lent) = pool.send(get("/")).await.unwrap();
        assert_eq!(body(res).await, "hello");
        assert!(!lent.is_h2());
        lent.give_back();
        // The connection's task finishes the exchange on its next turn.
        tokio::task::yield_now().await;
    }
    assert_eq!(accepted.load(SeqCst), 1);
}

/// `max_connections` bounds the pool: with every connection busy, a request
/// waits for one to free (and then reuses it) or, after `slot_wait`, fails
/// `Busy` without opening another.
#[tokio::test]
async fn max_connections_bounds_the_pool_and_a_request_waits_for_a_free_one() {
    // Requests are held until `open` is set, then answered at once.
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = open.clone();
    let (authority, accepted) = accept_each(move |s| {
        let gate = gate.clone();
        async move {
            let svc = service_fn(move |_req: Request<Incoming>| {
                let gate = gate.clone();
                async move {
                    while !gate.load(SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
        }
    })
    .await;
    let pool: Arc<UpstreamPool<Full<Bytes>>> = Arc::new(UpstreamPool::new(
        Dialer::Plain(HttpConnector::new()),
        Scheme::HTTP,
        &authority,
        Duration::from_secs(90),
        2,
        Duration::from_millis(300),
    ));
    let req = || Request::get("/x").body(Full::new(Bytes::new())).unwrap();
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            let r = req();
            tokio::spawn(async move { pool.send(r).await.map(|(res, lent)| (res.status(), lent)) })
        })
        .collect();
    // Wait until both connections are open and holding a request.
    for _ in 0..100 {
        if accepted.load(SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A third: no slot and nothing idle within slot_wait.
    let started = std::time::Instant::now();
    let third = pool.send(req()).await;
    assert!(
        matches!(third, Err(SendError::Busy { max: 2 })),
        "{:?}",
        third.err()
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(accepted.load(SeqCst), 2, "a third connection was opened");
    // A fourth waits; the first answer frees a connection, which it reuses.
    let waiting = {
        let pool = pool.clone();
        let r = req();
        tokio::spawn(async move { pool.send(r).await.map(|(res, lent)| (res.status(), lent)) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    open.store(true, SeqCst);
    for b in busy {
        let (status, lent) = b.await.unwrap().unwrap();
        assert_eq!(status, 200);
        lent.give_back();
    }
    let (status, _) = waiting.await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        accepted.load(SeqCst),
        2,
        "the waiting request opened a connection"
    );
}
