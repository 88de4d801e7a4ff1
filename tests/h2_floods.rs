//! The known HTTP/2 floods, sent as raw frames, against the proxy's h2c
//! listener (hyper and h2 with the proxy's settings): rapid reset,
//! CONTINUATION flood, SETTINGS flood, PING flood, an HPACK bomb, and
//! streams held idle past the concurrency limit. Each flooding connection
//! is closed or its excess refused, the proxy's memory stays bounded, and
//! another client is served meanwhile. Also: one client's many streams
//! never open more upstream connections than the target's
//! `max_connections`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A raw h2c connection.
struct RawH2 {
    stream: TcpStream,
}

/// HPACK: a literal header field without indexing, new name, no Huffman
/// (names and values here are under 127 bytes).
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// A request's header block: GET or POST, http, `path`.
fn request_block(method_post: bool, path: &str) -> Vec<u8> {
    // Static table: 2 = :method GET, 3 = :method POST, 6 = :scheme http.
    let mut b = vec![if method_post { 0x83 } else { 0x82 }, 0x86];
    // :path (static index 4) as a literal with an indexed name.
    b.push(0x04);
    b.push(path.len() as u8);
    b.extend_from_slice(path.as_bytes());
    literal(&mut b, ":authority", "proxy");
    b
}

/// How a flooding connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// GOAWAY received (then usually EOF).
    GoAway(u32),
    /// Closed without GOAWAY (EOF or reset).
    Closed,
    /// Still open when we stopped waiting.
    Open,
}

impl RawH2 {
    async fn connect(addr: &str) -> RawH2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut h = RawH2 { stream };
        // Our SETTINGS (none), then ACK the server's.
        h.frame(SETTINGS, 0, 0, &[]).await.ok();
        h.frame(SETTINGS, 0x1, 0, &[]).await.ok();
        h
    }

    async fn frame(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8]) -> std::io::Result<()> {
        let len = payload.len() as u32;
        let mut f = Vec::with_capacity(9 + payload.len());
        f.extend_from_slice(&len.to_be_bytes()[1..]);
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        self.stream.write_all(&f).await
    }

    /// Read frames until GOAWAY, EOF or `wait`; counts RST_STREAMs and
    /// HEADERS frames the server sent.
    async fn read_until_end(&mut self, wait: Duration) -> (End, usize, usize) {
        let deadline = Instant::now() + wait;
        let (mut resets, mut headers) = (0, 0);
        let mut buf = Vec::new();
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                match buf[3] {
                    GOAWAY if len >= 8 => {
                        let code = u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]);
                        return (End::GoAway(code), resets, headers);
                    }
                    RST_STREAM => resets += 1,
                    HEADERS => headers += 1,
                    _ => {}
                }
                buf.drain(..9 + len);
            }
            let mut chunk = [0u8; 65536];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return (End::Open, resets, headers),
                Ok(Ok(0)) | Ok(Err(_)) => return (End::Closed, resets, headers),
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// An ordinary client (h2c and HTTP/1.1) is served while `flood` runs.
async fn served_meanwhile(proxy: &ProxyProc) {
    for c in [h2c_client(), client()] {
        let req = http::Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
            .body(empty())
            .unwrap();
        let started = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(5), c.request(req))
            .await
            .expect("another client waited over 5 s during the flood")
            .expect("another client's request failed during the flood");
        assert_eq!(res.status(), 200, "after {:?}", started.elapsed());
    }
}

async fn start() -> (ProxyProc, RecordingUpstream, String) {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &up.url()),
        ("LGTM_PROMETHEUS_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);
    let addr = proxy.url("").trim_start_matches("http://").to_string();
    (proxy, up, addr)
}

/// RSS must stay under this while flooding (it idles near 15 MiB).
const RSS_BOUND_KIB: u64 = 200 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn rapid_reset_closes_the_connection() {
    let (proxy, _up, addr) = start().await;
    let mut h = RawH2::connect(&addr).await;
    let block = request_block(false, "/prometheus/api/v1/query?query=up");
    let mut sent = 0u32;
    for i in 0..20_000u32 {
        let id = 2 * i + 1;
        if h.frame(HEADERS, END_HEADERS | END_STREAM, id, &block)
            .await
            .is_err()
            || h.frame(RST_STREAM, 0, id, &8u32.to_be_bytes())
                .await
                .is_err()
        {
            break;
        }
        sent += 1;
    }
    served_meanwhile(&proxy).await;
    let (end, _, _) = h.read_until_end(Duration::from_secs(5)).await;
    eprintln!("rapid reset: {sent} pairs sent, then {end:?}");
    // ENHANCE_YOUR_CALM (11) once the resets pass hyper's limit.
    assert!(
        matches!(end, End::GoAway(11) | End::Closed),
        "{end:?} after {sent} HEADERS+RST_STREAM pairs"
    );
    assert!(sent < 20_000 || end != End::Open);
    assert!(proxy.rss_kib() < RSS_BOUND_KIB);
}

#[tokio::test(flavor = "multi_thread")]
async fn continuation_flood_closes_the_connection() {
    let (proxy, _up, addr) = start().await;
    let mut h = RawH2::connect(&addr).await;
    let block = request_block(false, "/prometheus/api/v1/query?query=up");
    h.frame(HEADERS, 0, 1, &block).await.unwrap();
    // Endless CONTINUATION frames, never END_HEADERS: each adds a header
    // field, so the list passes the proxy's header-list limit.
    let mut field = Vec::new();
    literal(&mut field, "x-flood", &"a".repeat(100));
    let payload: Vec<u8> = field.repeat(140); // 15,400 bytes: under the 16 KiB frame limit
    let mut frames = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if h.frame(CONTINUATION, 0, 1, &payload).await.is_err() {
            break;
        }
        frames += 1;
        if frames % 64 == 0 {
            tokio::task::yield_now().await;
        }
        if frames > 20_000 {
            break;
        }
    }
    served_meanwhile(&proxy).await;
    let (end, _, headers) = h.read_until_end(Duration::from_secs(5)).await;
    eprintln!("CONTINUATION flood: {frames} frames sent, then {end:?}");
    assert!(
        matches!(end, End::GoAway(_) | End::Closed),
        "{end:?} after {frames} CONTINUATION frames"
    );
    assert_eq!(headers, 0, "the flooded request was answered");
    assert!(proxy.rss_kib() < RSS_BOUND_KIB);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_and_ping_floods_stay_bounded() {
    let (proxy, _up, addr) = start().await;
    for (kind, payload) in [(SETTINGS, vec![]), (PING, vec![0u8; 8])] {
        let mut h = RawH2::connect(&addr).await;
        // Never read the ACKs: the server must not queue them without
        // bound. It either closes the connection or stops reading
        // (backpressure), which stalls our writes.
        let mut sent = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) && sent < 2_000_000 {
            match tokio::time::timeout(Duration::from_secs(1), h.frame(kind, 0, 0, &payload)).await
            {
                Ok(Ok(())) => sent += 1,
                Ok(Err(_)) => break, // closed
                Err(_) => break,     // backpressure: the server stopped reading
            }
        }
        served_meanwhile(&proxy).await;
        assert!(
            proxy.rss_kib() < RSS_BOUND_KIB,
            "frame type {kind}: RSS {} KiB after {sent} frames",
            proxy.rss_kib()
        );
        let (end, _, _) = h.read_until_end(Duration::from_millis(500)).await;
        eprintln!(
            "frame type {kind}: {sent} frames sent in {:?}, then {end:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hpack_bomb_is_refused() {
    let (proxy, up, addr) = start().await;
    let mut h = RawH2::connect(&addr).await;
    // One 4000-byte header into the dynamic table (literal with
    // incremental indexing, new name), then many one-byte references to it
    // (index 62): each decodes to 4 KB.
    let mut block = request_block(false, "/prometheus/api/v1/query?query=up");
    block.push(0x40);
    block.push(6);
    block.extend_from_slice(b"x-bomb");
    let value = "b".repeat(4000);
    // Value length 4000 as an HPACK integer with a 7-bit prefix.
    block.push(0x7f);
    let mut rest = 4000 - 127;
    while rest >= 128 {
        block.push(((rest % 128) | 128) as u8);
        rest /= 128;
    }
    block.push(rest as u8);
    block.extend_from_slice(value.as_bytes());
    block.extend(std::iter::repeat_n(0xbe, 16_000 - 200)); // 0x80 | 62
    let mut first = true;
    for chunk in block.chunks(16_000) {
        let kind = if first { HEADERS } else { CONTINUATION };
        first = false;
        let last = chunk.as_ptr_range().end == block.as_ptr_range().end;
        let flags = if last { END_HEADERS | END_STREAM } else { 0 };
        if h.frame(kind, flags, 1, chunk).await.is_err() {
            break;
        }
    }
    let (end, resets, headers) = h.read_until_end(Duration::from_secs(3)).await;
    eprintln!("HPACK bomb: {resets} resets, {headers} HEADERS, then {end:?}");
    served_meanwhile(&proxy).await;
    // Refused: the stream reset, a 431, or the connection closed; never
    // forwarded.
    assert!(
        resets > 0 || headers > 0 || matches!(end, End::GoAway(_) | End::Closed),
        "{end:?}"
    );
    assert!(
        up.requests()
            .iter()
            .all(|r| !r.headers.contains_key("x-bomb")),
        "the bomb reached the upstream"
    );
    assert!(proxy.rss_kib() < RSS_BOUND_KIB);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_streams_past_the_limit_are_refused() {
    let (proxy, _up, addr) = start().await;
    let mut h = RawH2::connect(&addr).await;
    // POST streams whose bodies never come: each stays open, idle.
    let block = request_block(true, "/api/prom/push");
    let opened = 1_000u32;
    for i in 0..opened {
        h.frame(HEADERS, END_HEADERS, 2 * i + 1, &block)
            .await
            .unwrap();
    }
    let (end, resets, _) = h.read_until_end(Duration::from_secs(3)).await;
    eprintln!("idle streams: {resets} of {opened} refused, then {end:?}");
    served_meanwhile(&proxy).await;
    // hyper allows 200 concurrent streams per connection: the rest are
    // refused (or the connection closed), never held.
    assert!(
        resets as u32 >= opened - 200 || matches!(end, End::GoAway(_) | End::Closed),
        "{resets} of {opened} refused, {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_never_opens_more_upstream_connections_than_the_limit() {
    // An upstream that counts connections and answers slowly.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(full("ok")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let toml = format!(
        "[upstreams.prometheus]\nurl = \"http://{addr}\"\nuser = \"1\"\ntoken = \"t\"\nmax_connections = 4\n"
    );
    let (proxy, _file) = ProxyProc::start_with_file(&toml, &[]);
    let c = h2c_client();
    let mut all = Vec::new();
    for _ in 0..150 {
        let req = http::Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
            .body(empty())
            .unwrap();
        all.push(tokio::spawn(c.request(req)));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for a in all {
        let res = a.await.unwrap().expect("every stream answered");
        *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
    }
    assert!(
        accepted.load(Ordering::SeqCst) <= 4,
        "{} upstream connections for one client (limit 4); statuses {statuses:?}",
        accepted.load(Ordering::SeqCst)
    );
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}
