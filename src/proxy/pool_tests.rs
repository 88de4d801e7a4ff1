use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use tokio::net::TcpListener;

use super::*;

/// A keep-alive upstream on 127.0.0.1:0 answering `ok`; counts connections.
async fn upstream() -> (Authority, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let host = req.headers()[HOST].to_str().unwrap().to_string();
                    let target = req.uri().to_string();
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("{host} {target}"),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (authority, accepted)
}

fn pool(authority: &Authority, idle: Duration) -> Arc<H1Pool<Full<Bytes>>> {
    Arc::new(H1Pool::new(HttpConnector::new(), authority, idle))
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
