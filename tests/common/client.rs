//! A plain HTTP client for the tests, and generated bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = UnsyncBoxBody<Bytes, BoxError>;

/// TCP as real clients open it (Go's net/http, which Alloy, Prometheus and
/// the OTel Collector use, sets TCP_NODELAY): no Nagle delay on the
/// request's last segment.
fn connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(connector())
}

pub fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector())
}

pub fn empty() -> TestBody {
    full(Bytes::new())
}

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// Send and read the whole (small) response.
pub async fn send(req: Request<TestBody>) -> (StatusCode, HeaderMap, Bytes) {
    let res = client().request(req).await.expect("request failed");
    read(res).await
}

pub async fn read(res: Response<Incoming>) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    (parts.status, parts.headers, body)
}

pub async fn get(url: &str) -> (StatusCode, HeaderMap, Bytes) {
    send(Request::get(url).body(empty()).unwrap()).await
}

const CHUNK: usize = 64 * 1024;

/// The byte at position `i` of every generated body (period 64 KiB, so
/// large bodies are slices of one precomputed chunk).
pub fn pattern_byte(i: u64) -> u8 {
    let i = i % CHUNK as u64;
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

fn pattern_chunk() -> Bytes {
    Bytes::from(pattern(CHUNK))
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(pattern_byte).collect()
}

/// A generated body: `len` bytes of the pattern in 64 KiB chunks, or given
/// bytes re-chunked; optionally failing part way (an upstream that dies).
pub struct PatternBody {
    sent: u64,
    len: u64,
    fail_at: Option<u64>,
    chunk: usize,
    /// The bytes to send (`None`: the periodic pattern).
    source: Option<Bytes>,
    base: Bytes,
    sized: bool,
    stall_at: Option<u64>,
}

impl PatternBody {
    pub fn new(len: u64) -> Self {
        PatternBody {
            sent: 0,
            len,
            fail_at: None,
            chunk: CHUNK,
            source: None,
            base: pattern_chunk(),
            sized: true,
            stall_at: None,
        }
    }

    /// Unsized: sent with Transfer-Encoding: chunked.
    pub fn chunked(len: u64) -> Self {
        PatternBody {
            sized: false,
            ..Self::new(len)
        }
    }

    pub fn chunked_from(bytes: Bytes, chunk: usize) -> Self {
        PatternBody {
            sent: 0,
            len: bytes.len() as u64,
            fail_at: None,
            chunk,
            source: Some(bytes),
            base: Bytes::new(),
            sized: false,
            stall_at: None,
        }
    }

    /// Sends `at` bytes, then never another frame (and never ends).
    pub fn stalling_after(len: u64, at: u64) -> Self {
        PatternBody {
            stall_at: Some(at),
            ..Self::new(len)
        }
    }

    pub fn failing_after(len: u64, at: u64) -> Self {
        PatternBody {
            fail_at: Some(at),
            ..Self::new(len)
        }
    }

    pub fn boxed_unsync(self) -> TestBody {
        UnsyncBoxBody::new(self)
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(at) = self.fail_at {
            if self.sent >= at {
                return Poll::Ready(Some(Err("generated body fails here".into())));
            }
        }
        if self.stall_at.is_some_and(|at| self.sent >= at) {
            return Poll::Pending;
        }
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(self.chunk as u64) as usize;
        let start = self.sent;
        let data = match &self.source {
            Some(src) => src.slice(start as usize..start as usize + n),
            None => self.base.slice(0..n),
        };
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

/// A body fed from a channel: the test decides when each chunk goes.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Poll `/metrics` at `base` until it contains `needle`: an exchange is
/// recorded when its last body ends, a moment after the client read it.
pub async fn wait_for_metric(base: &str, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, _, m) = get(&format!("{base}/metrics")).await;
        if String::from_utf8_lossy(&m).contains(needle) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A URL on 127.0.0.1 whose port was just free and is closed again: a
/// connect there is refused.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// Poll until `check` is true (60 s at most: a few job or sync intervals
/// plus a Prometheus scrape or two).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The value of the first sample line of a /metrics text that contains
/// every needle.
pub fn sample(metrics: &str, needles: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `Authorization: Basic` for `user:token`, as the proxy injects it.
pub fn basic(user: &str, token: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}
