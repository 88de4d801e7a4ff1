//! WebSocket through the proxy with real clients and servers
//! (tokio-tungstenite): Loki's tail endpoint gets the rewrite and injected
//! credentials, frames echo both ways, either side may close, the idle
//! timeout closes a silent session, and a TLS upstream that offers h2 is
//! still reached over HTTP/1.1.

// tungstenite's handshake callback signature fixes its large error type.
#![allow(clippy::result_large_err)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Default)]
struct Seen {
    uri: String,
    authorization: Option<String>,
    org: Vec<String>,
    alpn: Option<Vec<u8>>,
}

/// A WebSocket upstream that records each handshake and echoes messages;
/// on "bye" it closes the session itself.
async fn ws_upstream(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, tls) = (log.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve_ws(stream, log, None).await,
                    Some(acc) => {
                        let Ok(s) = acc.accept(stream).await else {
                            return;
                        };
                        let alpn = s.get_ref().1.alpn_protocol().map(|p| p.to_vec());
                        serve_ws(s, log, Some(alpn.unwrap_or_default())).await
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn serve_ws<S>(stream: S, log: Arc<Mutex<Vec<Seen>>>, alpn: Option<Vec<u8>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let record = |req: &WsRequest, res: WsResponse| {
        log.lock().unwrap().push(Seen {
            uri: req.uri().to_string(),
            authorization: req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            org: req
                .headers()
                .get_all("x-scope-orgid")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            alpn: alpn.clone(),
        });
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) if t == "bye" => {
                let _ = ws.close(None).await;
                break;
            }
            Message::Text(_) | Message::Binary(_) => {
                let echoed = ws.send(msg).await;
                if echoed.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}

async fn connect(proxy: &ProxyProc, path: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    connect_with(
        proxy,
        path,
        &[
            ("authorization", "Bearer client-secret"),
            ("x-scope-orgid", "spoofed"),
        ],
    )
    .await
}

async fn connect_with(
    proxy: &ProxyProc,
    path: &str,
    headers: &[(&'static str, &str)],
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let mut req = format!("ws://{}{path}", proxy.addr)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (ws, res) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(res.status(), 101);
    ws
}

async fn metric(proxy: &ProxyProc, name: &str) -> String {
    let (_, _, m) = get(&proxy.url("/metrics")).await;
    String::from_utf8_lossy(&m)
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn loki_tail_websocket_is_rewritten_injected_and_echoed() {
    let (addr, seen) = ws_upstream(None).await;
    let url = format!("http://{addr}");
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1329819"),
        ("LGTM_TOKEN", "loki-token"),
    ]);
    let mut ws = connect(
        &proxy,
        "/loki/api/v1/tail?query=%7Bjob%3D%22x%22%7D&limit=10",
    )
    .await;
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("hello".into())
    );
    let big = vec![7u8; 200_000];
    ws.send(Message::Binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(big));
    assert_eq!(
        metric(&proxy, "lgtm_proxy_upgraded_sessions").await,
        "lgtm_proxy_upgraded_sessions 1"
    );

    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        s.uri,
        "/loki/api/v1/tail?query=%7Bjob%3D%22x%22%7D&limit=10"
    );
    assert_eq!(
        s.authorization.as_deref(),
        Some(basic("1329819", "loki-token").as_str())
    );
    assert_eq!(s.org, ["1329819"]);

    // The client closes: the close reaches the upstream and the session ends.
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&proxy, "lgtm_proxy_upgraded_sessions").await != "lgtm_proxy_upgraded_sessions 0" {
        assert!(Instant::now() < deadline, "the session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        proxy.wait_for_log("\"status\":101", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_may_close_first() {
    let (addr, _) = ws_upstream(None).await;
    let url = format!("http://{addr}");
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let mut ws = connect(&proxy, "/loki/api/v1/tail").await;
    ws.send(Message::Text("bye".into())).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no close arrived");
    assert!(
        matches!(next, Some(Ok(Message::Close(_))) | None),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_session_is_closed_at_upgrade_idle_timeout() {
    let (addr, _) = ws_upstream(None).await;
    let toml = format!(
        "[upstreams.loki]\nurl = \"http://{addr}\"\nbasic_auth = false\n[[routes]]\nprefix = \"/loki\"\nupstream = \"loki\"\nupgrade_idle_timeout = \"300ms\"\n"
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let mut ws = connect(&proxy, "/loki/api/v1/tail").await;
    ws.send(Message::Text("ping".into())).await.unwrap();
    assert!(ws.next().await.unwrap().is_ok());
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the idle session stayed open");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_use_http1_even_when_a_tls_upstream_offers_h2() {
    let (acceptor, pem) = common::tls::self_signed_acceptor();
    let (addr, seen) = ws_upstream(Some(acceptor)).await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), pem).unwrap();
    let url = format!("https://{addr}");
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_LOKI_CA_FILE", ca.path().to_str().unwrap()),
    ]);
    let mut ws = connect(&proxy, "/loki/api/v1/tail").await;
    ws.send(Message::Text("over tls".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("over tls".into())
    );
    let s = seen.lock().unwrap()[0].clone();
    // hyper-rustls offers no ALPN at all on an HTTP/1-only client: either
    // way the server cannot pick h2.
    assert!(
        s.alpn.as_deref().is_some_and(|p| p != b"h2"),
        "the upgrade negotiated {:?}",
        s.alpn
    );
}

/// A reload that revokes a client closes what it still holds open: its
/// WebSocket session and its HTTP/2 connection, within `watch_interval`
/// and a second. Another client's session and connection stay open.
#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_client_closes_its_open_session_and_h2_connection() {
    let (addr, _) = ws_upstream(None).await;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, "token-a\n").unwrap();
    std::fs::write(&b, "token-b\n").unwrap();
    let toml = format!(
        r#"watch_interval = "1s"
[tenants.stage.upstreams.loki]
url = "http://{addr}"
basic_auth = false
[[tenants.stage.clients]]
name = "a"
token_file = "{}"
[[tenants.stage.clients]]
name = "b"
token_file = "{}"
"#,
        a.display(),
        b.display()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let tail = "/loki/api/v1/tail?query=x";
    let mut ws_a = connect_with(&proxy, tail, &[("authorization", "Bearer token-a")]).await;
    let mut ws_b = connect_with(&proxy, tail, &[("authorization", "Bearer token-b")]).await;
    for ws in [&mut ws_a, &mut ws_b] {
        ws.send(Message::Text("ping".into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("ping".into())
        );
    }
    // An h2 (prior knowledge) connection per client, one request each.
    let h2 = |token: &'static str| {
        let addr = proxy.addr;
        async move {
            let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
            let (mut tx, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            let closed = tokio::spawn(conn);
            let req = http::Request::get(format!("http://{addr}/loki/api/v1/labels"))
                .header("authorization", format!("Bearer {token}"))
                .body(empty())
                .unwrap();
            let res = tx.send_request(req).await.unwrap();
            assert_ne!(res.status(), 401);
            (tx, closed)
        }
    };
    let (_tx_a, h2_a) = h2("token-a").await;
    let (_tx_b, h2_b) = h2("token-b").await;

    std::fs::remove_file(&a).unwrap();
    let revoked_at = Instant::now();
    // The session ends: a close or an error, never another echo.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws_a.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the revoked client's session stayed open");
    let _ = tokio::time::timeout(Duration::from_secs(10), h2_a)
        .await
        .expect("the revoked client's h2 connection stayed open");
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(2) + Duration::from_millis(500),
        "closed after {took:?} (watch_interval 1s)"
    );
    // b is untouched.
    ws_b.send(Message::Text("still".into())).await.unwrap();
    assert_eq!(
        ws_b.next().await.unwrap().unwrap(),
        Message::Text("still".into())
    );
    assert!(
        !h2_b.is_finished(),
        "the other client's h2 connection was closed"
    );
    assert!(proxy
        .logs()
        .contains("a reload revoked its client credentials"));
}
