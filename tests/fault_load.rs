//! Upstream faults under load: 64 clients stream remote-write bodies and
//! queries through the proxy while the upstream, per request at random
//! (seeded), resets before its headers or in the middle of either body,
//! stalls, drips its headers or its body, answers 429/503 with
//! Retry-After, closes after its headers, or sends a malformed status line
//! or oversized headers. Every request ends within the upstream's
//! `timeout` + 1 s with the contract's status; afterwards nothing is held:
//! the in-flight gauge is 0, every tenant slot is free, the proxy has no
//! more file descriptors than before, and it keeps serving.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::Request;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 6;
const PUSH_BYTES: u64 = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(1);
const CLIENT_TOKEN: &str = "fault-load-client-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Ok,
    ResetBeforeHeaders,
    ResetMidRequestBody,
    ResetMidResponseBody,
    Stall,
    DripHeaders,
    DripBody,
    TooMany,
    Unavailable,
    CloseAfterHeaders,
    MalformedStatus,
    OversizedHeaders,
}

const FAULTS: &[Fault] = &[
    Fault::Ok,
    Fault::ResetBeforeHeaders,
    Fault::ResetMidRequestBody,
    Fault::ResetMidResponseBody,
    Fault::Stall,
    Fault::DripHeaders,
    Fault::DripBody,
    Fault::TooMany,
    Fault::Unavailable,
    Fault::CloseAfterHeaders,
    Fault::MalformedStatus,
    Fault::OversizedHeaders,
];

/// What the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A response whose body ended as announced.
    Complete {
        status: u16,
        retry_after: Option<String>,
    },
    /// A response whose body was cut.
    Aborted { status: u16 },
    /// No response at all.
    Failed(String),
}

/// The seeded choice of fault, per request in arrival order.
struct Chaos {
    rng: Mutex<u64>,
    /// Once set, every request is answered 200 after a short pause.
    healthy: AtomicBool,
    chosen: Mutex<HashMap<String, Fault>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Chaos {
    fn pick(&self) -> Fault {
        let mut x = self.rng.lock().unwrap();
        // xorshift64
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        FAULTS[(*x % FAULTS.len() as u64) as usize]
    }
}

async fn chaos_upstream(seed: u64) -> (SocketAddr, Arc<Chaos>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let chaos = Arc::new(Chaos {
        rng: Mutex::new(seed),
        healthy: AtomicBool::new(false),
        chosen: Mutex::default(),
        tasks: Mutex::default(),
    });
    let c = chaos.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let task = tokio::spawn(serve_one(stream, c.clone()));
            c.tasks.lock().unwrap().push(task.abort_handle());
        }
    });
    (addr, chaos)
}

/// Read a request head; `None` when the proxy closed first.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Close with RST instead of FIN.
fn reset(stream: TcpStream) {
    let std = stream.into_std().unwrap();
    socket2::SockRef::from(&std)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(std);
}

/// Read until the proxy closes (or `limit` bytes more), discarding.
async fn drain(stream: &mut TcpStream, mut limit: u64) {
    let mut chunk = [0u8; 65536];
    while limit > 0 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => limit = limit.saturating_sub(n as u64),
        }
    }
}

/// One connection, one request, `Connection: close`.
async fn serve_one(mut stream: TcpStream, chaos: Arc<Chaos>) {
    let mut buf = Vec::new();
    let Some(end) = read_head(&mut stream, &mut buf).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let body_len: u64 = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let unread = body_len.saturating_sub((buf.len() - end) as u64);
    let id = header(&head, "x-test-id").unwrap_or("").to_string();
    let fault = if chaos.healthy.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Fault::Ok
    } else {
        chaos.pick()
    };
    chaos.chosen.lock().unwrap().insert(id, fault);
    let ok = |extra: &str, body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    match fault {
        Fault::Ok => {
            drain(&mut stream, unread).await;
            let _ = stream.write_all(ok("", "ok").as_bytes()).await;
        }
        Fault::ResetBeforeHeaders => reset(stream),
        Fault::ResetMidRequestBody => {
            drain(&mut stream, unread / 2).await;
            reset(stream);
        }
        Fault::ResetMidResponseBody => {
            drain(&mut stream, unread).await;
            let head = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&[b'x'; 5000]).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(stream);
        }
        Fault::Stall => drain(&mut stream, u64::MAX).await,
        Fault::DripHeaders => {
            drain(&mut stream, unread).await;
            for b in ok("", "ok").bytes() {
                if stream.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Fault::DripBody => {
            drain(&mut stream, unread).await;
            let head = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..1000 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Fault::TooMany | Fault::Unavailable => {
            drain(&mut stream, unread).await;
            let status = if fault == Fault::TooMany {
                "429 Too Many Requests"
            } else {
                "503 Service Unavailable"
            };
            let body = "slow down";
            let res = format!(
                "HTTP/1.1 {status}\r\nretry-after: 7\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(res.as_bytes()).await;
        }
        Fault::CloseAfterHeaders => {
            drain(&mut stream, unread).await;
            let head = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Fault::MalformedStatus => {
            drain(&mut stream, unread).await;
            let _ = stream
                .write_all(b"HTTP/1.1 2x0 Nope\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
        Fault::OversizedHeaders => {
            drain(&mut stream, unread).await;
            let big = "a".repeat(1 << 20);
            let res = format!("HTTP/1.1 200 OK\r\nx-big: {big}\r\ncontent-length: 0\r\n\r\n");
            let _ = stream.write_all(res.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// The statuses the contract gives each fault (a cut body keeps the
/// upstream's 200: the headers were already on their way).
fn expected(fault: Fault, outcome: &Outcome) -> bool {
    let complete = |s: u16| matches!(outcome, Outcome::Complete { status, .. } if *status == s);
    match fault {
        Fault::Ok => complete(200),
        Fault::TooMany | Fault::Unavailable => {
            let status = if fault == Fault::TooMany { 429 } else { 503 };
            *outcome
                == Outcome::Complete {
                    status,
                    retry_after: Some("7".into()),
                }
        }
        Fault::ResetBeforeHeaders | Fault::MalformedStatus | Fault::OversizedHeaders => {
            complete(502)
        }
        Fault::ResetMidRequestBody => complete(502),
        Fault::Stall | Fault::DripHeaders => complete(504),
        Fault::ResetMidResponseBody | Fault::DripBody => {
            matches!(outcome, Outcome::Aborted { status: 200 })
        }
        // No body byte ever came: hyper writes a response head together
        // with the first body bytes, so the client may see the connection
        // close with no response instead of a cut 200. Either way it is an
        // error to the client, never a complete response.
        Fault::CloseAfterHeaders => match outcome {
            Outcome::Aborted { status: 200 } => true,
            Outcome::Failed(e) => e.contains("IncompleteMessage"),
            _ => false,
        },
    }
}

async fn exchange(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        TestBody,
    >,
    req: Request<TestBody>,
) -> Outcome {
    let res = match client.request(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("{e:?}")),
    };
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    match res.into_body().collect().await {
        Ok(_) => Outcome::Complete {
            status,
            retry_after,
        },
        Err(_) => Outcome::Aborted { status },
    }
}

async fn metrics_text(proxy: &ProxyProc) -> String {
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    String::from_utf8(body.to_vec()).unwrap()
}

fn push(proxy: &ProxyProc, id: &str) -> Request<TestBody> {
    Request::post(proxy.url("/api/prom/push"))
        .header("authorization", format!("Bearer {CLIENT_TOKEN}"))
        .header("content-type", "application/x-protobuf")
        .header("x-test-id", id)
        .body(PatternBody::new(PUSH_BYTES).boxed_unsync())
        .unwrap()
}

fn query(proxy: &ProxyProc, id: &str) -> Request<TestBody> {
    Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
        .header("authorization", format!("Bearer {CLIENT_TOKEN}"))
        .header("x-test-id", id)
        .body(empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_ends_with_its_status_and_nothing_leaks() {
    let (addr, chaos) = chaos_upstream(0x5eed_fa17_0000_0001).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("clients");
    std::fs::write(&tokens, format!("{CLIENT_TOKEN}\n")).unwrap();
    let toml = format!(
        r#"
[upstreams.prometheus]
url = "http://{addr}"
user = "1"
token = "upstream-token"
timeout = "{timeout}s"
idle_timeout = "500ms"
[tenants.team]
client_tokens_file = {tokens:?}
max_in_flight = {CLIENTS}
[tenants.team.upstreams.prometheus]
user = "2"
"#,
        timeout = TIMEOUT.as_secs()
    );
    let (proxy, _file) = ProxyProc::start_with_file(&toml, &[]);
    // Warm up (the runtime's lazily opened descriptors), then count.
    chaos.healthy.store(true, Ordering::SeqCst);
    let warm = exchange(&client(), query(&proxy, "warm")).await;
    assert!(
        matches!(warm, Outcome::Complete { status: 200, .. }),
        "{warm:?}"
    );
    let _ = metrics_text(&proxy).await;
    chaos.healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds_before = proxy.fd_count();

    let proxy = Arc::new(proxy);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let proxy = proxy.clone();
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                let id = format!("{c}-{r}");
                let req = if (c + r) % 2 == 0 {
                    push(&proxy, &id)
                } else {
                    query(&proxy, &id)
                };
                let started = Instant::now();
                let outcome =
                    tokio::time::timeout(TIMEOUT + Duration::from_secs(1), exchange(&http, req))
                        .await
                        .unwrap_or_else(|_| Outcome::Failed("no end within timeout + 1 s".into()));
                seen.push((id, outcome, started.elapsed()));
            }
            seen
        }));
    }
    let mut results = Vec::new();
    for c in clients {
        results.extend(c.await.unwrap());
    }
    assert_eq!(results.len(), CLIENTS * REQUESTS_PER_CLIENT);

    let chosen = chaos.chosen.lock().unwrap().clone();
    let mut wrong = Vec::new();
    let mut per_fault: HashMap<Fault, usize> = HashMap::new();
    for (id, outcome, took) in &results {
        let Some(fault) = chosen.get(id) else {
            wrong.push(format!(
                "{id}: never reached the upstream: {outcome:?} after {took:?}"
            ));
            continue;
        };
        *per_fault.entry(*fault).or_default() += 1;
        if !expected(*fault, outcome) {
            wrong.push(format!("{id}: {fault:?} gave {outcome:?} after {took:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        results.len(),
        wrong.join("\n")
    );
    // The seed spreads requests over every fault.
    for f in FAULTS {
        assert!(
            per_fault.get(f).copied().unwrap_or(0) > 0,
            "{f:?} never chosen: {per_fault:?}"
        );
    }

    // Nothing held: the gauge is 0, then every tenant slot (writes and
    // reads separately) can be taken at once again.
    chaos.healthy.store(true, Ordering::SeqCst);
    eventually("in-flight requests back to 0", || async {
        sample(
            &metrics_text(&proxy).await,
            &["lgtm_proxy_in_flight_requests "],
        ) == Some(0.0)
    })
    .await;
    let mut all = Vec::new();
    for i in 0..CLIENTS {
        let proxy = proxy.clone();
        all.push(tokio::spawn(async move {
            let (writer, reader) = (client(), client());
            let (a, b) = tokio::join!(
                exchange(&writer, push(&proxy, &format!("slot-w-{i}"))),
                exchange(&reader, query(&proxy, &format!("slot-r-{i}")))
            );
            [a, b]
        }));
    }
    for a in all {
        for outcome in a.await.unwrap() {
            assert!(
                matches!(outcome, Outcome::Complete { status: 200, .. }),
                "a tenant slot is still held: {outcome:?}"
            );
        }
    }

    // No descriptor leaks: with the upstream's connections gone and the
    // clients' closed, the proxy holds what it held before.
    for t in chaos.tasks.lock().unwrap().drain(..) {
        t.abort();
    }
    eventually(
        "file descriptors back to their count before the load",
        || async { proxy.fd_count() <= fds_before },
    )
    .await;
    let (s, _, _) = get(&proxy.url("/health")).await;
    assert_eq!(s, 200);
}
