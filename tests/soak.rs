//! Soak: mixed traffic at a steady rate through the proxy (queries, 64 KiB
//! pushes, a WebSocket tail, gRPC OTLP exports, a 256 MiB upload every few
//! minutes) while the upstream token file rotates and a SIGHUP arrives
//! every 10 s, and a remote-write job (real source and receiving
//! Prometheus) and rules sync (in-process ruler) run.
//!
//! Every 10 s a sample of the proxy's RSS, descriptors, threads, the
//! upstream connections it holds and the client-side p99 goes into a CSV.
//! Passes when, after a warm-up (5 minutes, or a third of a short run),
//! RSS and descriptors stay within 10% of their value then; no request
//! fails; no request reaches the upstream with a rotated-out token once the
//! proxy has been seen to reload after the rotation (`/metrics` reload
//! counter; 500 ms slack for requests already on their way).
//!
//! `cargo test --test soak` runs 3 minutes (CI); `benches/soak/run.sh
//! --minutes 60` runs it longer in release mode and plots the CSV.
//! LGTM_SOAK_MINUTES and LGTM_SOAK_CSV set the length and the output.

mod common;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use common::mimir::Mimir;
use common::prometheus::Prometheus;
use common::*;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

const WATCH_INTERVAL: Duration = Duration::from_secs(1);
const ROTATE_EVERY: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const USER: &str = "4242";

/// The token the upstream expects, the one before it, and when the proxy
/// was seen to reload after the rotation (from then on, the previous token
/// is stale).
struct Tokens {
    current: String,
    previous: String,
    seen: Option<Instant>,
}

/// Requests whose headers left the proxy just before its reload may reach
/// the upstream a moment after it.
const IN_FLIGHT_SLACK: Duration = Duration::from_millis(500);

#[derive(Default)]
struct UpstreamStats {
    connections: AtomicUsize,
    stale: AtomicU64,
    pushed_bytes: AtomicU64,
    first_stale: Mutex<Option<String>>,
}

struct SoakUpstream {
    addr: SocketAddr,
    tokens: Arc<Mutex<Tokens>>,
    stats: Arc<UpstreamStats>,
}

type UpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn basic(token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{token}"))
    )
}

fn small(status: StatusCode, body: &'static str) -> Response<UpBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    *r.status_mut() = status;
    r
}

impl SoakUpstream {
    async fn start(first_token: &str) -> SoakUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = Arc::new(Mutex::new(Tokens {
            current: first_token.to_string(),
            previous: String::new(),
            seen: None,
        }));
        let stats: Arc<UpstreamStats> = Arc::default();
        let (t, s) = (tokens.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (t, s) = (t.clone(), s.clone());
                tokio::spawn(async move {
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    let stats = s.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        answer(req, t.clone(), stats.clone())
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                    s.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        SoakUpstream {
            addr,
            tokens,
            stats,
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    tokens: Arc<Mutex<Tokens>>,
    stats: Arc<UpstreamStats>,
) -> Result<Response<UpBody>, Infallible> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let fresh = {
        let t = tokens.lock().unwrap();
        auth == basic(&t.current)
            || (auth == basic(&t.previous) && t.seen.is_none_or(|s| s.elapsed() < IN_FLIGHT_SLACK))
    };
    if !fresh {
        stats.stale.fetch_add(1, Ordering::SeqCst);
        stats
            .first_stale
            .lock()
            .unwrap()
            .get_or_insert_with(|| format!("{} {}", req.method(), req.uri()));
        return Ok(small(StatusCode::UNAUTHORIZED, "stale credential"));
    }
    let path = req.uri().path().to_string();
    if req.headers().contains_key("upgrade") {
        let key = req
            .headers()
            .get("sec-websocket-key")
            .map(|k| derive_accept_key(k.as_bytes()))
            .unwrap_or_default();
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                None,
            )
            .await;
            let mut n = 0u64;
            loop {
                n += 1;
                let line = format!("{{\"streams\":[{{\"values\":[[\"{n}\",\"line {n}\"]]}}]}}");
                if futures_util::SinkExt::send(&mut ws, Message::Text(line))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let mut r = small(StatusCode::SWITCHING_PROTOCOLS, "");
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        r.headers_mut()
            .insert("sec-websocket-accept", key.parse().unwrap());
        return Ok(r);
    }
    if path.starts_with("/opentelemetry.proto") {
        let _ = req.into_body().collect().await;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = [
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let mut r = Response::new(BodyExt::boxed_unsync(body));
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        return Ok(r);
    }
    if req.method() == http::Method::POST {
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        stats
                            .pushed_bytes
                            .fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                }
                Err(_) => return Ok(small(StatusCode::BAD_REQUEST, "body failed")),
            }
        }
        return Ok(small(StatusCode::NO_CONTENT, ""));
    }
    Ok(small(
        StatusCode::OK,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    ))
}

/// Client-side results of the current sample window.
#[derive(Default)]
struct Window {
    latencies: Vec<Duration>,
    requests: u64,
    failures: Vec<String>,
}

#[derive(Default)]
struct Load {
    window: Mutex<Window>,
    failures: Mutex<Vec<String>>,
    requests: AtomicU64,
    ws_messages: AtomicU64,
}

impl Load {
    fn record(&self, what: &str, started: Instant, ok: Result<(), String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut w = self.window.lock().unwrap();
        w.requests += 1;
        match ok {
            Ok(()) => w.latencies.push(started.elapsed()),
            Err(e) => {
                let e = format!("{what}: {e}");
                w.failures.push(e.clone());
                self.failures.lock().unwrap().push(e);
            }
        }
    }
}

async fn expect_ok(res: Result<Response<Incoming>, impl std::fmt::Debug>) -> Result<(), String> {
    let res = res.map_err(|e| format!("{e:?}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status} {:?}", body.to_bytes()));
    }
    Ok(())
}

fn p99(latencies: &mut [Duration]) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort();
    let i = ((latencies.len() as f64) * 0.99).ceil() as usize;
    latencies[i.clamp(1, latencies.len()) - 1].as_secs_f64() * 1000.0
}

const SOURCE_YML: &str = r#"
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: webapp
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
        labels: {namespace: webapp-team}
"#;

const RULES: &str = r#"
tenant: rules
groups:
  - name: soak
    rules:
      - record: soak:up:sum
        expr: sum(up)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_under_reloads_and_rotations() {
    let minutes: u64 = std::env::var("LGTM_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let csv_path = std::env::var("LGTM_SOAK_CSV").unwrap_or_else(|_| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("soak.csv").display().to_string()
    });
    let total = Duration::from_secs(minutes * 60);
    let warm_up = Duration::from_secs(300).min(total / 3);
    let big_every = Duration::from_secs(180).min(total / 2);

    let up = SoakUpstream::start("soak-token-0").await;
    let mimir = Mimir::start().await;
    let source = Prometheus::start(&[], SOURCE_YML, false);
    let receiver = Prometheus::start(
        &["--web.enable-remote-write-receiver"],
        "global: {}\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("upstream-token");
    std::fs::write(&token_file, "soak-token-0").unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("soak.yaml"), RULES).unwrap();
    let addr = up.addr;
    let toml = format!(
        r#"
watch_interval = "{watch}s"
[upstreams.prometheus]
url = "http://{addr}"
user = "{USER}"
token_file = {token_file:?}
[upstreams.loki]
url = "http://{addr}"
user = "{USER}"
token_file = {token_file:?}
[upstreams.tempo_grpc]
url = "http://{addr}"
user = "{USER}"
token_file = {token_file:?}
[tenants.rules.upstreams.prometheus]
url = "{mimir}"
user = "7"
[remote_write]
sources = ["{source}"]
[[remote_write.jobs]]
name = "soak"
namespace = "webapp-team"
metrics = ["up"]
interval = "10s"
[remote_write.jobs.target]
type = "remote_write"
url = "{receiver}/api/v1/write"
[rules_sync]
dir = {rules_dir:?}
interval = "10s"
"#,
        watch = WATCH_INTERVAL.as_secs(),
        mimir = mimir.url(),
        source = source.url(),
        receiver = receiver.url(),
    );
    let (proxy, _file) = ProxyProc::start_with_file(&toml, &[]);
    let proxy = Arc::new(proxy);
    let load = Arc::new(Load::default());
    let started = Instant::now();
    let deadline = started + total;

    // Steady traffic: each kind on its own ticker; every request a task, so
    // a slow one never slows the rate.
    let mut tickers = Vec::new();
    let kinds: &[(&str, u64)] = &[("query", 100), ("push", 200), ("otlp", 500)];
    for &(kind, every_ms) in kinds {
        let (proxy, load) = (proxy.clone(), load.clone());
        tickers.push(tokio::spawn(async move {
            let h1 = client();
            let h2 = h2c_client();
            let payload = Bytes::from(pattern(64 * 1024));
            let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
            while Instant::now() < deadline {
                tick.tick().await;
                let (h1, h2, proxy, load, payload) = (
                    h1.clone(),
                    h2.clone(),
                    proxy.clone(),
                    load.clone(),
                    payload.clone(),
                );
                tokio::spawn(async move {
                    let t = Instant::now();
                    let res = match kind {
                        "query" => {
                            let req = Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
                                .body(empty())
                                .unwrap();
                            expect_ok(h1.request(req).await).await
                        }
                        "push" => {
                            let req = Request::post(proxy.url("/api/prom/push"))
                                .header("content-type", "application/x-protobuf")
                                .body(full(payload))
                                .unwrap();
                            expect_ok(h1.request(req).await).await
                        }
                        _ => {
                            let req = Request::post(proxy.url(
                                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                            ))
                            .header("content-type", "application/grpc")
                            .header("te", "trailers")
                            .body(full(Bytes::from_static(&[0, 0, 0, 0, 0])))
                            .unwrap();
                            expect_ok(h2.request(req).await).await
                        }
                    };
                    load.record(kind, t, res);
                });
            }
        }));
    }
    // A WebSocket tail for the whole run.
    {
        let (proxy, load) = (proxy.clone(), load.clone());
        tickers.push(tokio::spawn(async move {
            let url = proxy
                .url("/loki/api/v1/tail?query=%7Bapp%3D%22soak%22%7D")
                .replace("http://", "ws://");
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("tail opens");
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => {
                        load.ws_messages.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(Ok(_))) => {}
                    other => {
                        let e = format!("tail: the session ended: {other:?}");
                        load.failures.lock().unwrap().push(e);
                        return;
                    }
                }
            }
        }));
    }
    // A 256 MiB upload every few minutes.
    {
        let (proxy, load) = (proxy.clone(), load.clone());
        tickers.push(tokio::spawn(async move {
            let mut next = started + big_every / 2;
            while next < deadline {
                tokio::time::sleep_until(next.into()).await;
                let t = Instant::now();
                let req = Request::post(proxy.url("/loki/api/v1/push"))
                    .header("content-type", "application/x-protobuf")
                    .body(PatternBody::new(256 << 20).boxed_unsync())
                    .unwrap();
                let res = expect_ok(client().request(req).await).await;
                load.record("upload 256 MiB", t, res);
                next += big_every;
            }
        }));
    }
    // A SIGHUP every 10 s.
    {
        let proxy = proxy.clone();
        tickers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(ROTATE_EVERY);
            tick.tick().await;
            while Instant::now() < deadline {
                tick.tick().await;
                proxy.signal("HUP");
            }
        }));
    }
    // A token file rotation every 10 s, 5 s after each SIGHUP.
    {
        let proxy = proxy.clone();
        let tokens = up.tokens.clone();
        let rotate_file = token_file.clone();
        let load = load.clone();
        tickers.push(tokio::spawn(async move {
            tokio::time::sleep(ROTATE_EVERY / 2).await;
            let mut tick = tokio::time::interval(ROTATE_EVERY);
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                let token = format!("soak-token-{n}");
                let tmp = rotate_file.with_extension("new");
                std::fs::write(&tmp, &token).unwrap();
                {
                    let mut t = tokens.lock().unwrap();
                    t.previous = std::mem::replace(&mut t.current, token.clone());
                    t.seen = None;
                }
                std::fs::rename(&tmp, &rotate_file).unwrap();
                // Seen: the first successful reload counted after the
                // new file is in place.
                let before = proxy.successful_reloads().await;
                let asked = Instant::now();
                while proxy.successful_reloads().await <= before {
                    if asked.elapsed() > Duration::from_secs(10) {
                        load.failures
                            .lock()
                            .unwrap()
                            .push(format!("rotation {n}: no reload within 10 s"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokens.lock().unwrap().seen = Some(Instant::now());
            }
        }));
    }
    // Sample every 10 s.
    let mut csv = std::fs::File::create(&csv_path).unwrap();
    writeln!(
        csv,
        "seconds,rss_kib,fds,threads,upstream_connections,p99_ms,requests,failures,stale"
    )
    .unwrap();
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.tick().await;
    while Instant::now() < deadline {
        tick.tick().await;
        let mut w = std::mem::take(&mut *load.window.lock().unwrap());
        let at = started.elapsed();
        let (rss, fds) = (proxy.rss_kib(), proxy.fd_count());
        writeln!(
            csv,
            "{},{rss},{fds},{},{},{:.1},{},{},{}",
            at.as_secs(),
            proxy.status_field("Threads"),
            up.stats.connections.load(Ordering::SeqCst),
            p99(&mut w.latencies),
            w.requests,
            w.failures.len(),
            up.stats.stale.load(Ordering::SeqCst),
        )
        .unwrap();
        csv.flush().unwrap();
        samples.push((at, rss, fds));
    }
    for t in tickers {
        let _ = t.await;
    }

    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests; first: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let stale = up.stats.stale.load(Ordering::SeqCst);
    assert_eq!(
        stale,
        0,
        "requests with a stale credential; first: {:?}",
        up.stats.first_stale.lock().unwrap()
    );
    assert!(load.requests.load(Ordering::Relaxed) > minutes * 60 * 10);
    assert!(
        load.ws_messages.load(Ordering::Relaxed) > 0,
        "the tail carried nothing"
    );
    // The background work ran: the job's series reached the receiver and
    // the rule group reached the ruler.
    assert!(
        !receiver
            .query(r#"up{namespace="webapp-team"}"#, false)
            .await
            .is_empty(),
        "the remote-write job pushed nothing"
    );
    assert!(
        mimir
            .groups("7")
            .values()
            .any(|g| g.iter().any(|n| n == "soak")),
        "rules sync wrote nothing: {:?}",
        mimir.groups("7")
    );
    // Flat after the warm-up.
    let reference = samples
        .iter()
        .find(|(at, _, _)| *at >= warm_up)
        .copied()
        .expect("a sample after the warm-up");
    for (at, rss, fds) in samples.iter().filter(|(at, _, _)| *at >= warm_up) {
        let within = |v: u64, r: u64| (v as f64) <= r as f64 * 1.1 && (v as f64) >= r as f64 * 0.9;
        assert!(
            within(*rss, reference.1),
            "RSS {rss} KiB at {at:?}, {} KiB at {:?} (CSV: {csv_path})",
            reference.1,
            reference.0
        );
        // Descriptors: 10%, but at least 4 either way: the client
        // connections in flight when a sample is taken (an upload, a
        // query, a push, an export) move a count of about 25 by that much.
        let fds_within =
            (*fds as i64 - reference.2 as i64).unsigned_abs() <= (reference.2 / 10).max(4);
        assert!(
            fds_within,
            "{fds} descriptors at {at:?}, {} at {:?} (CSV: {csv_path})",
            reference.2, reference.0
        );
    }
    eprintln!("soak: {csv_path}");
}
