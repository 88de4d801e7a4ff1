//! The keep-alive pool toward plain-HTTP upstreams: connections are reused
//! across requests and bodies, each request carries the upstream's Host and
//! an origin-form target, an upstream that closes idle connections costs no
//! failed request, and `Connection: close` is honoured.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::{full, get, send};
use common::proxy::ProxyProc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a raw upstream ends each answered request.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Keep the connection for the next request.
    KeepAlive,
    /// Close the socket right after the answer (an idle cut-off of zero),
    /// without saying so in the response.
    Close,
    /// Answer with `Connection: close`, then close.
    SayClose,
}

/// A raw HTTP/1.1 upstream: counts connections, records each request head,
/// reads `content-length` bodies whole and answers `200 ok`.
struct RawUpstream {
    url: String,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start(after: AfterAnswer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (c, h) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                c.fetch_add(1, SeqCst);
                tokio::spawn(serve(s, h.clone(), after));
            }
        });
        RawUpstream {
            url,
            connections,
            heads,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve(mut s: tokio::net::TcpStream, heads: Arc<Mutex<Vec<String>>>, after: AfterAnswer) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // One head, then its body by content-length.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        heads.lock().unwrap().push(head);
        while buf.len() < end + len {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        let answer: &[u8] = match after {
            AfterAnswer::SayClose => {
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
            }
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        };
        if s.write_all(answer).await.is_err() {
            return;
        }
        if !matches!(after, AfterAnswer::KeepAlive) {
            return;
        }
    }
}

fn proxy_for(up: &RawUpstream) -> ProxyProc {
    ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &up.url),
        ("LGTM_PROMETHEUS_USER", "2668285"),
        ("LGTM_TOKEN", "glc_pool_token"),
    ])
}

#[tokio::test]
async fn sequential_requests_and_bodies_share_one_upstream_connection() {
    let up = RawUpstream::start(AfterAnswer::KeepAlive).await;
    let proxy = proxy_for(&up);
    for i in 0..40 {
        let (s, _, b) = get(&proxy.url(&format!("/prometheus/api/v1/query?query=up&i={i}"))).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }
    for _ in 0..10 {
        let req = http::Request::post(proxy.url("/api/prom/push"))
            .body(full(vec![b'x'; 256 * 1024]))
            .unwrap();
        assert_eq!(send(req).await.0, 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "every request after the first reused it"
    );
    let heads = up.heads();
    assert_eq!(heads.len(), 50);
    let addr = up.url.trim_start_matches("http://");
    for (i, head) in heads.iter().take(40).enumerate() {
        // Origin-form target, the upstream's own Host, exactly once.
        let first = head.lines().next().unwrap();
        assert_eq!(
            first,
            format!("GET /api/prom/api/v1/query?query=up&i={i} HTTP/1.1")
        );
        let hosts: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .collect();
        assert_eq!(hosts, [format!("host: {addr}")]);
    }
    assert!(heads[40].starts_with("POST /api/prom/push HTTP/1.1\r\n"));
}

#[tokio::test]
async fn concurrent_requests_open_at_most_one_connection_each_then_reuse_them() {
    let up = RawUpstream::start(AfterAnswer::KeepAlive).await;
    let proxy = proxy_for(&up);
    let url = proxy.url("/prometheus/api/v1/query?query=up");
    for _ in 0..3 {
        let rounds: Vec<_> = (0..16)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { get(&url).await.0 })
            })
            .collect();
        for r in rounds {
            assert_eq!(r.await.unwrap(), 200);
        }
    }
    let n = up.connections();
    assert!(
        (1..=16).contains(&n),
        "48 requests in rounds of 16 took {n} connections"
    );
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_costs_no_failed_request() {
    let up = RawUpstream::start(AfterAnswer::Close).await;
    let proxy = proxy_for(&up);
    for _ in 0..10 {
        let (s, _, b) = get(&proxy.url("/prometheus/api/v1/query?query=up")).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        // Time for the close to reach the proxy before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.connections(), 10, "a closed connection is never reused");
}

#[tokio::test]
async fn connection_close_from_the_upstream_is_honoured() {
    let up = RawUpstream::start(AfterAnswer::SayClose).await;
    let proxy = proxy_for(&up);
    // No pause: `Connection: close` is known with the response itself.
    for _ in 0..10 {
        let (s, _, b) = get(&proxy.url("/prometheus/api/v1/query?query=up")).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }
    assert_eq!(up.connections(), 10);
}
