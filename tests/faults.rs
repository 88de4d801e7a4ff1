//! Upstream faults: a closed port is 502, silence past `timeout` is 504
//! naming the setting, and an upstream dying mid-body aborts the client's
//! response instead of ending it as if complete. Never a hang.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_502_connect() {
    let url = closed_port_url();
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let (s, _, b) = get(&proxy.url("/loki/api/v1/labels")).await;
    assert_eq!(s, 502);
    let v = json(&b);
    assert_eq!(v["kind"], "connect");
    assert_eq!(v["upstream"], "loki");
    let base = proxy.url("");
    assert!(
        wait_for_metric(
            &base,
            r#"lgtm_proxy_upstream_errors_total{kind="connect",upstream="loki"} 1"#
        )
        .await
    );
    assert!(wait_for_metric(&base, r#"lgtm_proxy_requests_total{method="GET",status="502",tenant="default",upstream="loki"} 1"#).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_upstream_is_504_naming_timeout() {
    let up = RecordingUpstream::start(Behavior::Hang).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_TEMPO_URL", &up.url()),
        ("LGTM_TEMPO_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_TEMPO_TIMEOUT", "300ms"),
    ]);
    let started = Instant::now();
    let (s, _, b) = get(&proxy.url("/tempo/api/search")).await;
    let took = started.elapsed();
    assert_eq!(s, 504);
    let v = json(&b);
    assert_eq!(v["setting"], "timeout");
    assert_eq!(v["value"], "300ms");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        wait_for_metric(
            &proxy.url(""),
            r#"lgtm_proxy_upstream_errors_total{kind="timeout",upstream="tempo"} 1"#
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_connect_is_504_naming_connect_timeout() {
    // A listener with a full backlog that is never accepted from: on Linux
    // further SYNs are dropped, so the connect hangs until connect_timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..512 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    let url = format!("http://{addr}");
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_LOKI_CONNECT_TIMEOUT", "200ms"),
    ]);
    let (s, _, b) = get(&proxy.url("/loki/x")).await;
    assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["setting"], "connect_timeout");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_dying_mid_body_aborts_the_client_response() {
    let up = RecordingUpstream::start(Behavior::CutMidBody(4 << 20)).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let res = client()
        .request(
            http::Request::get(proxy.url("/loki/api/v1/query_range"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], (4u64 << 20).to_string());
    let collected = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect()).await;
    let result = collected.expect("the client hung instead of seeing the abort");
    assert!(result.is_err(), "a truncated body was reported as complete");
    assert!(
        proxy.wait_for_log("\"outcome\":\"aborted\"", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_dying_mid_chunked_body_aborts_too() {
    // Same over an h2c client: the proxy must reset the stream.
    let up = RecordingUpstream::start(Behavior::CutMidBody(2 << 20)).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let res = h2c_client()
        .request(
            http::Request::get(proxy.url("/loki/x"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let collected = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect()).await;
    assert!(
        collected.expect("hung").is_err(),
        "a truncated h2 body was reported as complete"
    );
}

/// Safe retries only: an upstream that read a request and then died gets
/// it once; the proxy answers 502 and never sends the POST again.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_upstream_received_is_never_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read one request's head, count it, and for a POST die
                // without answering; answer anything else.
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if got.starts_with(b"POST") {
                            return; // drop: connection reset after the request went out
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        got.clear();
                    }
                }
            });
        }
    });
    let url = format!("http://{addr}");
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    // Warm the pool with a GET so the POST goes out on a reused connection.
    assert_eq!(get(&proxy.url("/loki/api/v1/labels")).await.0, 200);
    let before = seen.load(std::sync::atomic::Ordering::SeqCst);
    let (s, _, b) = send(
        http::Request::post(proxy.url("/loki/api/v1/push"))
            .body(full(&b"once"[..]))
            .unwrap(),
    )
    .await;
    assert_eq!(s, 502, "{}", String::from_utf8_lossy(&b));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "the POST was sent more than once"
    );
}
