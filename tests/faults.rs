//! Upstream faults: a closed port is 502, silence past `timeout` or a
//! connection set-up (TCP, TLS) past `connect_timeout` is 504 naming the
//! setting, and an upstream dying mid-body aborts the client's
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

/// An https upstream that accepts TCP and never answers the TLS
/// handshake; counts the connections it accepted (and holds them open).
async fn stalled_tls_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_tls_handshake_is_504_naming_connect_timeout() {
    // The TCP connect succeeds at once; connect_timeout still bounds the
    // whole set-up, so the request never waits for `timeout`.
    let (url, _) = stalled_tls_upstream().await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_LOKI_CONNECT_TIMEOUT", "300ms"),
        ("LGTM_LOKI_TIMEOUT", "60s"),
    ]);
    let started = Instant::now();
    let (s, _, b) = get(&proxy.url("/loki/api/v1/labels")).await;
    assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
    let v = json(&b);
    assert_eq!(v["setting"], "connect_timeout");
    assert_eq!(v["value"], "300ms");
    // An upgrade goes through the HTTP/1.1-only client: bounded the same.
    let upgrade = http::Request::get(proxy.url("/loki/api/v1/tail"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(empty())
        .unwrap();
    let (s, _, b) = send(upgrade).await;
    assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["setting"], "connect_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_waiting_for_a_failed_connect_share_its_failure() {
    // 20 requests arrive together at a cold https upstream that stalls the
    // handshake. One connect is tried; when it times out every request
    // that waited for it answers 504 with it, instead of each trying its
    // own connect in turn (the last one 20 connect_timeouts later).
    let (url, accepted) = stalled_tls_upstream().await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_LOKI_CONNECT_TIMEOUT", "1s"),
        ("LGTM_LOKI_TIMEOUT", "60s"),
    ]);
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let url = proxy.url(&format!("/loki/api/v1/labels?n={i}"));
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for r in requests {
        let (s, _, b) = r.await.unwrap();
        assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
        assert_eq!(json(&b)["setting"], "connect_timeout");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "each waiting request tried a connect of its own"
    );
    // The failure is not remembered past the requests that waited for it:
    // the next request tries again.
    let (s, _, _) = get(&proxy.url("/loki/api/v1/labels")).await;
    assert_eq!(s, 504);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
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

/// An answer given before the request body was read says
/// `Connection: close` (hyper closes that connection, and a client reusing
/// it would lose its next request); one given after the whole body keeps
/// the connection.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_before_the_body_was_read_closes_the_connection() {
    let closed = closed_port_url();
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("clients");
    std::fs::write(&tokens, "good-token\n").unwrap();
    let toml = format!(
        r#"
[upstreams.prometheus]
url = "{closed}"
user = "1"
token = "t"
[upstreams.loki]
url = "{loki}"
user = "1"
token = "t"
[tenants.team]
client_tokens_file = {tokens:?}
[tenants.team.upstreams.prometheus]
user = "2"
[tenants.team.upstreams.loki]
user = "3"
"#,
        loki = up.url()
    );
    let (proxy, _file) = ProxyProc::start_with_file(&toml, &[]);
    let post = |path: &str, token: &str| {
        http::Request::post(proxy.url(path))
            .header("authorization", format!("Bearer {token}"))
            .body(PatternBody::new(256 * 1024).boxed_unsync())
            .unwrap()
    };
    let connection =
        |h: &http::HeaderMap| h.get("connection").map(|v| v.to_str().unwrap().to_string());
    // Upstream unreachable: 502 before a body byte was read.
    let (s, h, _) = send(post("/api/prom/push", "good-token")).await;
    assert_eq!(s, 502);
    assert_eq!(connection(&h).as_deref(), Some("close"));
    // Refused before routing: 401, body unread.
    let (s, h, _) = send(post("/loki/api/v1/push", "wrong-token")).await;
    assert_eq!(s, 401);
    assert_eq!(connection(&h).as_deref(), Some("close"));
    // A request without a body leaves nothing unread: its connection
    // stays, even on a 502.
    let (s, h, _) = send(
        http::Request::get(proxy.url("/api/prom/api/v1/query?query=up"))
            .header("authorization", "Bearer good-token")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, 502);
    assert_eq!(connection(&h), None);
    // The whole body went to the upstream: the connection stays.
    let (s, h, _) = send(post("/loki/api/v1/push", "good-token")).await;
    assert_eq!(s, 200);
    assert_eq!(connection(&h), None);

    // One client's pool, early refusals and full exchanges in turn: no
    // request is lost to a connection the proxy was closing.
    let http = client();
    for i in 0..40 {
        let (path, token, want) = match i % 4 {
            0 => ("/api/prom/push", "good-token", 502),
            1 => ("/loki/api/v1/push", "good-token", 200),
            2 => ("/loki/api/v1/push", "wrong-token", 401),
            _ => ("/loki/api/v1/push", "good-token", 200),
        };
        let res = http
            .request(post(path, token))
            .await
            .unwrap_or_else(|e| panic!("request {i} lost: {e:?}"));
        assert_eq!(res.status(), want, "request {i}");
        res.into_body().collect().await.unwrap();
    }
}
