//! Outbound transport: TLS upstreams (ALPN h2, extra CA via `ca_file`, a
//! refused certificate is 502 `tls`), and egress through HTTP_PROXY /
//! HTTPS_PROXY / NO_PROXY as corporate networks need.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn ca_file(pem: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), pem).unwrap();
    f
}

/// The proxy with Loki at `up`'s https URL, trusting `pem` (the CA file is
/// returned: it must outlive the proxy's start).
fn loki_over_tls(up: &RecordingUpstream, pem: &str) -> (ProxyProc, tempfile::NamedTempFile) {
    let ca = ca_file(pem);
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.https_url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_LOKI_CA_FILE", ca.path().to_str().unwrap()),
    ]);
    (proxy, ca)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_with_extra_ca_speaks_h2_by_alpn() {
    let (up, pem) = RecordingUpstream::start_tls(Behavior::Echo).await;
    let (proxy, _ca) = loki_over_tls(&up, &pem);
    let req = http::Request::post(proxy.url("/loki/api/v1/push?x=%2F"))
        .body(full(&b"over tls"[..]))
        .unwrap();
    let (s, _, body) = send(req).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"over tls");
    let rec = up.last();
    assert_eq!(rec.version, http::Version::HTTP_2, "ALPN should pick h2");
    assert_eq!(rec.target, "/loki/api/v1/push?x=%2F");
    assert!(rec.headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert!(
        rec.headers.get("host").is_none(),
        "h2 carries :authority, not Host"
    );
}

/// Ids unique to each request go to an h2 upstream never indexed; the
/// values that repeat share the connection's HPACK table. Over one
/// connection, 300 requests (more than the table holds ids) must each
/// arrive with their own ids and the repeating headers intact.
#[tokio::test(flavor = "multi_thread")]
async fn per_request_ids_reach_an_h2_upstream_intact_request_after_request() {
    let (up, pem) = RecordingUpstream::start_tls(Behavior::Ok).await;
    let (proxy, _ca) = loki_over_tls(&up, &pem);
    let mut generated = std::collections::HashSet::new();
    for i in 0..300u32 {
        let mut req = http::Request::get(proxy.url("/loki/api/v1/labels"))
            .header("user-agent", "grafana/11.3")
            .header("x-grafana-org-id", "1");
        let trace = format!("00-{i:032x}-{:016x}-01", i + 7);
        if i % 2 == 0 {
            req = req
                .header("x-request-id", format!("client-{i}"))
                .header("traceparent", &trace);
        }
        let (s, _, _) = send(req.body(full(&b""[..])).unwrap()).await;
        assert_eq!(s, 200);
        let rec = up.last();
        assert_eq!(rec.version, http::Version::HTTP_2);
        assert_eq!(rec.headers["user-agent"], "grafana/11.3", "request {i}");
        assert_eq!(rec.headers["x-grafana-org-id"], "1", "request {i}");
        assert_eq!(rec.headers["x-scope-orgid"], "1", "request {i}");
        if i % 2 == 0 {
            assert_eq!(rec.headers["x-request-id"], &format!("client-{i}")[..]);
            assert_eq!(rec.headers["traceparent"], &trace[..]);
        } else {
            let id = rec.headers["x-request-id"].to_str().unwrap().to_string();
            assert_eq!(id.len(), 20, "a generated id: {id}");
            assert!(generated.insert(id), "request {i} repeated an id");
            assert!(rec.headers.get("traceparent").is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_is_502_tls() {
    let (up, _pem) = RecordingUpstream::start_tls(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.https_url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let (s, _, b) = get(&proxy.url("/loki/x")).await;
    assert_eq!(s, 502);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["kind"], "tls", "{v} {}", proxy.logs());
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_upstream_goes_through_http_proxy_in_absolute_form() {
    // The recording upstream plays the egress proxy: it sees absolute-form.
    let egress = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", "http://loki.internal.example:3100"),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("HTTP_PROXY", &egress.url()),
    ]);
    let (s, _, _) = get(&proxy.url("/loki/api/v1/labels?a=b")).await;
    assert_eq!(s, 200);
    let rec = egress.last();
    assert_eq!(
        rec.uri,
        "http://loki.internal.example:3100/loki/api/v1/labels?a=b"
    );
    assert_eq!(rec.headers["host"], "loki.internal.example:3100");
    assert!(rec.headers.get("authorization").is_some());
}

/// A CONNECT proxy that records each CONNECT target and splices to it.
async fn connect_proxy() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(&mut client);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).await.unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(line.trim_end().to_string());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_goes_through_a_connect_tunnel() {
    let (up, pem) = RecordingUpstream::start_tls(Behavior::Ok).await;
    let ca = ca_file(&pem);
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxyProc::start(&[
        ("LGTM_TEMPO_URL", &up.https_url()),
        ("LGTM_TEMPO_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_TEMPO_CA_FILE", ca.path().to_str().unwrap()),
        ("HTTPS_PROXY", &format!("http://{proxy_addr}")),
    ]);
    let (s, _, _) = get(&proxy.url("/tempo/api/echo")).await;
    assert_eq!(s, 200);
    assert_eq!(
        seen.lock().unwrap().clone(),
        [format!("CONNECT {} HTTP/1.1", up.addr)]
    );
    assert_eq!(up.last().target, "/tempo/api/echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_proxy_hosts_go_direct() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_OTLP_URL", &up.url()),
        ("LGTM_OTLP_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("NO_PROXY", "127.0.0.1,.svc.cluster.local"),
    ]);
    let (s, _, _) = get(&proxy.url("/otlp/v1/x")).await;
    assert_eq!(s, 200);
    assert_eq!(up.last().uri, "/otlp/v1/x");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_egress_proxy_scheme_is_refused_not_misused() {
    // A socks5 proxy URL must not be spoken to as if it were an HTTP proxy.
    let (up, pem) = RecordingUpstream::start_tls(Behavior::Ok).await;
    let ca = ca_file(&pem);
    let proxy = ProxyProc::start(&[
        ("LGTM_TEMPO_URL", &up.https_url()),
        ("LGTM_TEMPO_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_TEMPO_CA_FILE", ca.path().to_str().unwrap()),
        ("HTTPS_PROXY", "socks5://127.0.0.1:9"),
    ]);
    let (s, _, b) = get(&proxy.url("/tempo/api/echo")).await;
    assert_eq!(s, 502, "{}", String::from_utf8_lossy(&b));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["kind"], "connect");
    assert!(
        up.requests().is_empty(),
        "the request bypassed the configured proxy"
    );
    assert!(
        proxy.wait_for_log(
            "unsupported egress proxy scheme socks5",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        proxy.logs()
    );
}
