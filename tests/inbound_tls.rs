//! Inbound TLS (client tokens never cross the cluster in clear) and mTLS
//! (a client certificate's subject CN selects a tenant client like a token
//! does). Certificates are reloaded like any secret file.

mod common;

use std::time::{Duration, Instant};

use common::tls::{https_client, tls_connect, TestCa};
use common::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

/// The proxy's own handshake and connection errors go to its logs, which a
/// test that times out prints.
const DEBUG: &str = "info,lgtm_proxy=debug";

#[tokio::test(flavor = "multi_thread")]
async fn mtls_client_certificate_selects_its_tenant_client() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server-ca");
    let server = server_ca.issue("lgtm-proxy");
    let client_ca = TestCa::new("client-ca");
    let alloy = client_ca.issue("alloy.stage");
    let stranger = TestCa::new("other-ca").issue("alloy.stage");
    let toml = format!(
        r#"
watch_interval = "200ms"
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{cca}"
[tenants.stage.upstreams.prometheus]
url = "{url}"
user = "111"
token = "stage-up"
[[tenants.stage.clients]]
name = "alloy"
cert_cn = "alloy.stage"
access = ["write"]
[[tenants.stage.clients]]
name = "grafana"
token_file = "{tok}"
"#,
        cert = write(&dir, "tls.crt", &server.cert_pem),
        key = write(&dir, "tls.key", &server.key_pem),
        cca = write(&dir, "client-ca.crt", &client_ca.pem()),
        url = up.url(),
        tok = write(&dir, "grafana-token", "grafana-token\n"),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_LOG", DEBUG)]);
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", proxy.addr.port());

    // A certificate from the client CA with CN alloy.stage: tenant stage,
    // client alloy (write only).
    let c = https_client(&server_ca.pem(), Some(&alloy));
    let res = proxy
        .within(
            "alloy's push",
            c.request(
                Request::post(url("/api/prom/push"))
                    .body(full(&b"x"[..]))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().headers["authorization"], basic("111", "stage-up"));
    // The upstream learns the client came over TLS.
    assert_eq!(up.last().headers["x-forwarded-proto"], "https");
    let res = proxy
        .within(
            "alloy's query",
            c.request(
                Request::get(url("/prometheus/api/v1/query"))
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "alloy may only write");

    // No certificate and no token: 401. A token still works over TLS.
    let plain = https_client(&server_ca.pem(), None);
    let res = proxy
        .within(
            "a query without credentials",
            plain.request(
                Request::get(url("/prometheus/api/v1/query"))
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = proxy
        .within(
            "grafana's query by token",
            plain.request(
                Request::get(url("/prometheus/api/v1/query"))
                    .header("authorization", "Bearer grafana-token")
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Own endpoints need nothing.
    let res = proxy
        .within(
            "/ready over TLS",
            plain.request(Request::get(url("/ready")).body(empty()).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A certificate from another CA is refused at the handshake. Checked on
    // a bare TLS connection: under TLS 1.3 the client finishes its side
    // before the proxy judges the certificate, so the refusal arrives as
    // the first read (an alert, a reset or the close), never as HTTP.
    let refused = proxy
        .within(
            "a TLS connection with a certificate from another CA",
            async {
                let mut tls = tls_connect(proxy.addr, &server_ca.pem(), Some(&stranger)).await?;
                tls.write_all(b"GET /ready HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await?;
                let mut buf = [0u8; 64];
                match tls.read(&mut buf).await? {
                    0 => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                    n => Ok(buf[..n].to_vec()),
                }
            },
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(proxy.wait_for_log("UnknownIssuer", Duration::from_secs(5)));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let refused = proxy
        .within(
            "plain HTTP to the TLS port",
            client().request(Request::get(proxy.url("/health")).body(empty()).unwrap()),
        )
        .await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_server_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old-ca");
    let new_ca = TestCa::new("new-ca");
    let old = old_ca.issue("lgtm-proxy");
    let cert = write(&dir, "tls.crt", &old.cert_pem);
    let key = write(&dir, "tls.key", &old.key_pem);
    let toml = format!(
        "watch_interval = \"200ms\"\n[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_LOG", DEBUG)]);
    let url = format!("https://127.0.0.1:{}/health", proxy.addr.port());
    let ok = |ca: String| {
        let url = url.clone();
        let proxy = &proxy;
        async move {
            proxy
                .within(
                    "/health over TLS",
                    https_client(&ca, None).request(Request::get(url).body(empty()).unwrap()),
                )
                .await
                .is_ok()
        }
    };
    assert!(ok(old_ca.pem()).await);
    assert!(!ok(new_ca.pem()).await);
    // Key first, then cert: the reload in between fails (mismatch) and the
    // old pair keeps serving; once both are new, the new one is served.
    let new = new_ca.issue("lgtm-proxy");
    std::fs::write(&key, &new.key_pem).unwrap();
    std::fs::write(&cert, &new.cert_pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(new_ca.pem()).await {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!ok(old_ca.pem()).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_silent_after_the_handshake_is_closed_at_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let server = ca.issue("lgtm-proxy");
    let toml = format!(
        "header_read_timeout = \"300ms\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        write(&dir, "tls.crt", &server.cert_pem),
        write(&dir, "tls.key", &server.key_pem),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_LOG", DEBUG)]);
    let mut tls = proxy
        .within(
            "the TLS handshake",
            tls_connect(proxy.addr, &ca.pem(), None),
        )
        .await
        .unwrap();
    // Handshake done, no request: the proxy closes the connection.
    let mut buf = [0u8; 64];
    let read = proxy
        .within(
            "a read from a silent TLS client's connection",
            tls.read(&mut buf),
        )
        .await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(proxy.wait_for_log(
        "no request within header_read_timeout",
        Duration::from_secs(5)
    ));
}

/// A client CA rotation that leaves an open connection's certificate
/// unverifiable closes that connection, and a WebSocket session opened
/// with it, within `watch_interval` and a second; a new connection with
/// that certificate is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_ca_rotation_closes_connections_whose_certificate_no_longer_verifies() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    // A WebSocket echo upstream for a session opened with the certificate.
    let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = ws_listener.accept().await {
            tokio::spawn(async move {
                use futures_util::{SinkExt, StreamExt};
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server-ca");
    let server = server_ca.issue("lgtm-proxy");
    let old_ca = TestCa::new("old-client-ca");
    let new_ca = TestCa::new("new-client-ca");
    let alloy = old_ca.issue("alloy.stage");
    let cca = write(&dir, "client-ca.crt", &old_ca.pem());
    let toml = format!(
        r#"
watch_interval = "1s"
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{cca}"
[tenants.stage.upstreams.prometheus]
url = "{url}"
user = "111"
token = "stage-up"
[tenants.stage.upstreams.loki]
url = "http://{ws_addr}"
basic_auth = false
[[tenants.stage.clients]]
name = "alloy"
cert_cn = "alloy.stage"
"#,
        cert = write(&dir, "tls.crt", &server.cert_pem),
        key = write(&dir, "tls.key", &server.key_pem),
        url = up.url(),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_LOG", DEBUG)]);
    // One keep-alive HTTP/1.1 connection over TLS with alloy's certificate.
    let tls = proxy
        .within(
            "handshake",
            tls_connect(proxy.addr, &server_ca.pem(), Some(&alloy)),
        )
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let closed = tokio::spawn(conn);
    let res = proxy
        .within(
            "alloy's query",
            tx.send_request(
                Request::get("/api/prom/api/v1/labels")
                    .header("host", "127.0.0.1")
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // And a WebSocket session (Loki tail) with the same certificate.
    let ws_tls = tls_connect(proxy.addr, &server_ca.pem(), Some(&alloy))
        .await
        .unwrap();
    let (mut ws, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let req = "wss://127.0.0.1/loki/api/v1/tail?query=x"
            .into_client_request()
            .unwrap();
        proxy
            .within(
                "websocket handshake",
                tokio_tungstenite::client_async(req, ws_tls),
            )
            .await
            .unwrap()
    };
    {
        use futures_util::{SinkExt, StreamExt};
        ws.send("ping".into()).await.unwrap();
        let echoed = proxy.within("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed.to_text().unwrap(), "ping");
    }

    std::fs::write(&cca, new_ca.pem()).unwrap();
    let rotated = Instant::now();
    proxy
        .within("the connection closes", closed)
        .await
        .unwrap()
        .ok();
    // The session ends too: a close or an error, never another echo.
    proxy
        .within("the session closes", async {
            use futures_util::StreamExt;
            loop {
                match ws.next().await {
                    Some(Ok(m)) if !m.is_close() => {}
                    _ => break,
                }
            }
        })
        .await;
    let took = rotated.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "closed after {took:?} (watch_interval 1s)"
    );
    // A new connection with the old CA's certificate is refused.
    let again = tls_connect(proxy.addr, &server_ca.pem(), Some(&alloy)).await;
    let refused = match again {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s
                .write_all(b"GET /api/prom/api/v1/labels HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            !matches!(s.read(&mut buf).await, Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
        }
    };
    assert!(refused, "the old CA's certificate still works");
    assert!(proxy
        .logs()
        .contains("a reload revoked its client credentials"));
}

/// Beyond `max_connections` (and its probe reserve) a TLS listener closes
/// the connection: no plaintext 503 onto a connection whose client expects
/// a handshake. Freed slots admit TLS clients again.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_tls_listener_closes_new_connections_without_plaintext() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let server = ca.issue("lgtm-proxy");
    let toml = format!(
        "max_connections = 1\nheader_read_timeout = \"5s\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         [upstreams.loki]\nurl = \"{}\"\nuser = \"7\"\ntoken = \"t\"\n",
        write(&dir, "tls.crt", &server.cert_pem),
        write(&dir, "tls.key", &server.key_pem),
        up.url(),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_LOG", DEBUG)]);
    // The one slot: a TLS connection, handshake done, kept open.
    let held = proxy
        .within(
            "the first handshake",
            tls_connect(proxy.addr, &ca.pem(), None),
        )
        .await
        .unwrap();
    // The probe reserve (8): silent sockets, closed by the proxy after
    // their 2 s first-bytes limit.
    let mut reserve = Vec::new();
    for _ in 0..8 {
        reserve.push(tokio::net::TcpStream::connect(proxy.addr).await.unwrap());
    }
    // Full: a TLS client's handshake fails...
    let refused = proxy
        .within(
            "a handshake beyond max_connections",
            tls_connect(proxy.addr, &ca.pem(), None),
        )
        .await;
    assert!(refused.is_err(), "a handshake completed beyond the limit");
    // ... and a raw socket reads nothing before the close.
    let mut raw = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    raw.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = proxy
        .within("the refused socket's close", raw.read_to_end(&mut got))
        .await;
    assert!(
        got.is_empty(),
        "plaintext on a TLS listener: {:?}",
        String::from_utf8_lossy(&got)
    );
    // Slots freed: TLS clients are served again.
    drop(held);
    drop(reserve);
    let c = https_client(&ca.pem(), None);
    let url = format!("https://127.0.0.1:{}/loki/api/v1/labels", proxy.addr.port());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = c
            .request(Request::get(url.as_str()).body(empty()).unwrap())
            .await;
        if matches!(&res, Ok(r) if r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {res:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.last().headers["x-forwarded-proto"], "https");
}
