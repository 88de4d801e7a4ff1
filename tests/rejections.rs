//! What the proxy refuses, with the contract's status codes and JSON bodies,
//! before anything reaches an upstream.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use http::Request;

async fn setup() -> (ProxyProc, RecordingUpstream) {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &up.url()),
        ("LGTM_PROMETHEUS_USER", "1"),
        ("LGTM_TOKEN", "t0ken"),
    ]);
    (proxy, up)
}

/// Send raw bytes and return what comes back until the server closes or
/// goes quiet.
fn raw(proxy: &ProxyProc, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("error bodies are JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_prefix_and_unconfigured_upstream_are_404_json() {
    let (proxy, up) = setup().await;
    for path in ["/nope", "/prometheusx/api", "/lokiish"] {
        let (s, h, b) = get(&proxy.url(path)).await;
        assert_eq!(s, 404, "{path}");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(json(&b)["error"], "no route matches this path");
    }
    let (s, _, b) = get(&proxy.url("/loki/api/v1/labels")).await;
    assert_eq!(s, 404);
    let v = json(&b);
    assert_eq!(v["upstream"], "loki");
    assert!(v["error"].as_str().unwrap().contains("not configured"));
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_and_encoded_separators_are_400_in_every_spelling() {
    let (proxy, up) = setup().await;
    let dots = "\"error\":\"path must not contain '.' or '..' segments\"";
    let separators = "\"error\":\"path must not contain '\\\\' or an encoded '/', '\\\\' or NUL\"";
    for (path, message) in [
        ("/prometheus/../admin", dots),
        ("/prometheus/%2e%2e/admin", dots),
        ("/prometheus/%2E%2e/x", dots),
        ("/prometheus/.%2e", dots),
        ("/prometheus/./api/v1/query", dots),
        ("/prometheus/%2E/api/v1/query", dots),
        ("/prometheus/..%2fadmin", separators),
        ("/prometheus/api%2Fv1/query", separators),
        ("/prometheus/api%5cv1/query", separators),
        ("/prometheus/api\\v1/query", separators),
        ("/prometheus/api/v1/query%00", separators),
    ] {
        let resp = raw(
            &proxy,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains(message), "{path}: {resp}");
    }
    assert!(up.requests().is_empty());
}

/// The path that reaches the upstream is the canonical one: encoded
/// unreserved characters decoded, slash runs merged, other escapes kept
/// (upper-cased), the query byte-for-byte.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_receives_the_canonical_path() {
    let (proxy, up) = setup().await;
    let resp = raw(
        &proxy,
        b"GET /prometheus//api/v1/%71uery/%3a%7e?query=%71 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = up.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uri, "/api/prom/api/v1/query/%3A~?query=%71");
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_and_asterisk_targets_are_400() {
    let (proxy, up) = setup().await;
    let resp = raw(&proxy, b"GET http://evil.example/prometheus/api/v1/query HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = raw(
        &proxy,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_are_431_on_http1_and_h2() {
    let (proxy, up) = setup().await;
    // 201 fields.
    let mut req = Request::get(proxy.url("/prometheus/api/v1/query"));
    for i in 0..201 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let (s, _, _) = send(req.body(empty()).unwrap()).await;
    assert_eq!(s, 431);
    // 70 KiB in one field.
    let big = "a".repeat(70 * 1024);
    let (s, _, _) = send(
        Request::get(proxy.url("/prometheus/q"))
            .header("x-big", &big)
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, 431);
    // The same over h2c: 201 fields.
    let mut req = Request::get(proxy.url("/prometheus/api/v1/query"));
    for i in 0..201 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let res = h2c_client()
        .request(req.body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    // Up to the limits passes: 190 fields, 60 KiB in all.
    let mut req = Request::get(proxy.url("/prometheus/api/v1/query"));
    for i in 0..190 {
        req = req.header(format!("x-h{i}"), "v");
    }
    req = req.header("x-big", "b".repeat(60 * 1024));
    let (s, _, _) = send(req.body(empty()).unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_framing_is_never_forwarded() {
    let (proxy, up) = setup().await;
    let cases: [&[u8]; 3] = [
        b"POST /prometheus/push HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /prometheus/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /prometheus/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    ];
    for case in cases {
        let resp = raw(&proxy, case);
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
            "{resp}"
        );
    }
    // A bad chunk size is only seen after the upstream request has started:
    // the upstream must then see a failed body, never a complete "hello".
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        up.requests().iter().all(|r| r.body.is_empty()),
        "a malformed body was forwarded"
    );
}

/// Content-Length with Transfer-Encoding: hyper decodes by Transfer-Encoding
/// alone and closes the connection after (RFC 9112 6.1), so the upstream
/// gets one unambiguous chunked request and nothing can be smuggled after it.
#[tokio::test(flavor = "multi_thread")]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let (proxy, up) = setup().await;
    let resp = raw(
        &proxy,
        b"POST /prometheus/push HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /prometheus/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 400") || resp.contains("connection: close"),
        "{resp}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for r in up.requests() {
        assert!(
            r.headers.get("content-length").is_none()
                || r.headers.get("transfer-encoding").is_none()
        );
        assert!(
            !r.target.contains("smuggled"),
            "a second request was smuggled through"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn own_endpoints_answer_and_refuse_other_methods() {
    let (proxy, _up) = setup().await;
    let (s, _, b) = get(&proxy.url("/health")).await;
    assert_eq!(s, 200);
    assert_eq!(json(&b)["status"], "ok");
    let (s, _, _) = get(&proxy.url("/ready")).await;
    assert_eq!(s, 200);
    let (s, h, _) = get(&proxy.url("/metrics")).await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let (s, h, _) = send(Request::post(proxy.url("/metrics")).body(empty()).unwrap()).await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "GET, HEAD");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_header_senders_are_cut_off_at_header_read_timeout() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        "header_read_timeout = \"300ms\"\n[upstreams.loki]\nurl = \"{}\"\nbasic_auth = false\n",
        up.url()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /loki/x HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        took < Duration::from_secs(5),
        "the connection stayed open {took:?}"
    );
    assert!(up.requests().is_empty());
}

/// Framing: a transfer coding other than `chunked` alone is 501 (never
/// forwarded with the coding dropped); one that does not end in chunked is
/// 400; Content-Length beside Transfer-Encoding is handled as RFC 9112 6.3
/// says for an intermediary: Content-Length dropped, chunked decoded, and
/// the connection closed after the response.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_codings_other_than_chunked_are_refused_and_cl_te_follows_rfc_9112() {
    let (proxy, up) = setup().await;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for (te, status) in [
        ("gzip, chunked", "501"),
        ("chunked, chunked", "501"),
        ("gzip", "400"),
    ] {
        let resp = raw(
            &proxy,
            format!(
                "POST /api/prom/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n{body}"
            )
            .as_bytes(),
        );
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{te}: {resp}"
        );
    }
    assert!(up.requests().is_empty());
    let resp = raw(
        &proxy,
        format!(
            "POST /api/prom/push HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )
        .as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    let got = up.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"hello");
    assert_ne!(
        got[0].headers.get("content-length").map(|v| v.as_bytes()),
        Some(&b"3"[..])
    );
}
