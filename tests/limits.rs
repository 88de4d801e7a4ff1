//! Timeouts that name their knob, body limits, and overload: idle bodies
//! are cut at `idle_timeout`, `max_body_bytes` answers 413, `max_in_flight`
//! and `max_connections` answer 503 with Retry-After at once and recover,
//! a slowloris client, a silent one, one stopping inside the h2 preface and
//! an idle keep-alive one are dropped at `header_read_timeout`, and 2,000
//! idle keep-alive connections are held (within it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::proxy;
use common::*;
use http::Request;
use http_body_util::BodyExt;

fn upstream_toml(url: &str, extra_upstream: &str, top: &str, routes: &str) -> String {
    format!("{top}\n[upstreams.loki]\nurl = \"{url}\"\nbasic_auth = false\n{extra_upstream}\n{routes}\n")
}

/// One HTTP/1.1 exchange on an open connection; returns the status line
/// and keeps the connection for the next one.
fn exchange(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_body_is_cut_at_idle_timeout() {
    let up = RecordingUpstream::start(Behavior::StallMidBody(1 << 20)).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(&up.url(), "idle_timeout = \"300ms\"", "", ""),
        &[],
    );
    let res = client()
        .request(
            Request::get(proxy.url("/loki/api/v1/query_range"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect())
        .await
        .expect("the stall was not cut");
    assert!(body.is_err(), "a stalled body was reported complete");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        proxy.wait_for_log("\"outcome\":\"idle_timeout\"", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
    assert!(
        wait_for_metric(
            &proxy.url(""),
            r#"lgtm_proxy_upstream_errors_total{kind="timeout",upstream="loki"} 1"#
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_client_upload_is_408_naming_idle_timeout() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(&up.url(), "idle_timeout = \"300ms\"", "", ""),
        &[],
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let status = exchange(
        &mut s,
        b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-some",
    );
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_body_bytes_is_413_on_content_length_and_while_streaming() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let routes = "[[routes]]\nprefix = \"/loki\"\nupstream = \"loki\"\nmax_body_bytes = 1000\n";
    let (proxy, _f) = ProxyProc::start_with_file(&upstream_toml(&up.url(), "", "", routes), &[]);
    // Declared too large: refused before the upstream is contacted.
    let (s, h, b) = send(
        Request::post(proxy.url("/loki/api/v1/push"))
            .body(full(vec![1u8; 2000]))
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
    // The body was never read: the client must not reuse the connection.
    assert_eq!(
        h.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["setting"].as_str(), v["value"].as_u64()),
        (Some("max_body_bytes"), Some(1000))
    );
    assert!(up.requests().is_empty());
    // Chunked, found too large while streaming.
    let body = PatternBody::chunked_from(bytes::Bytes::from(vec![2u8; 5000]), 700).boxed_unsync();
    let (s, h, _) = send(
        Request::post(proxy.url("/loki/api/v1/push"))
            .body(body)
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
    assert_eq!(
        h.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert!(up.requests().iter().all(|r| r.body_len <= 1000 + 700));
    // Within the limit: passes.
    let (s, h, _) = send(
        Request::post(proxy.url("/loki/api/v1/push"))
            .body(full(vec![3u8; 999]))
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("connection"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_in_flight_answers_503_at_once_and_recovers() {
    let up = RecordingUpstream::start(Behavior::HangReads).await;
    let (proxy, _f) =
        ProxyProc::start_with_file(&upstream_toml(&up.url(), "", "max_in_flight = 2", ""), &[]);
    // Two queries hang upstream (their tasks are aborted below, so they
    // return the result instead of unwrapping it).
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let req = Request::get(proxy.url("/loki/api/v1/tail"))
                .body(empty())
                .unwrap();
            tokio::spawn(async move { client().request(req).await.map(|r| r.status()) })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.requests().len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let res = client()
        .request(
            Request::post(proxy.url("/loki/api/v1/push"))
                .body(full(&b"x"[..]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 must come at once"
    );
    for t in stuck {
        t.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _, _) = send(
            Request::post(proxy.url("/loki/api/v1/push"))
                .body(full(&b"x"[..]))
                .unwrap(),
        )
        .await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_answers_503_and_recovers() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(&up.url(), "", "max_connections = 3", ""),
        &[],
    );
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    for s in held.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(exchange(s, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").contains("200"));
    }
    // Full: a proxied request on a new connection is refused with 503.
    let mut extra = TcpStream::connect(proxy.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let status = exchange(&mut extra, b"GET /loki/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if exchange(
            &mut s,
            b"GET /loki/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .contains("200")
        {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Idle sockets that hold every `max_connections` slot never fail the
/// probes: on the main port, /health, /ready and /metrics answer from a
/// small reserve (anything else there: 503); on `admin_listen` they answer
/// with no limit at all, even once the reserve is held too.
#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_while_idle_sockets_hold_max_connections() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let admin_port = common::prometheus::free_port();
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(
            &up.url(),
            "",
            &format!("max_connections = 4\nadmin_listen = \"127.0.0.1:{admin_port}\""),
            "",
        ),
        &[],
    );
    // Anyone: connect and say nothing.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let ask = |addr: std::net::SocketAddr, path: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        exchange(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    for path in ["/health", "/ready", "/metrics"] {
        let status = ask(proxy.addr, path);
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
    }
    let status = ask(proxy.addr, "/loki/x");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(up.requests().is_empty());

    // The reserve held too (8 more idle sockets): the main port is full,
    // the admin port is not. A probe connection above may still hold its
    // reserve slot for a moment after its answer, so a socket the proxy
    // refused (it reads a 503 at once) is replaced until 8 are held.
    let mut more: Vec<TcpStream> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while more.len() < 8 {
        assert!(Instant::now() < deadline, "the reserve never filled");
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            // No answer: admitted and waiting for its request.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                more.push(s)
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let status = ask(proxy.addr, "/health");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    for path in ["/health", "/ready", "/metrics"] {
        let status = ask(admin, path);
        assert!(status.starts_with("HTTP/1.1 200"), "admin {path}: {status}");
    }
    let status = ask(admin, "/loki/x");
    assert!(
        status.starts_with("HTTP/1.1 404"),
        "admin /loki/x: {status}"
    );
    assert!(up.requests().is_empty());
    drop((idle, more));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowloris_client_is_dropped_at_header_read_timeout() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(&up.url(), "", "header_read_timeout = \"500ms\"", ""),
        &[],
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    let started = Instant::now();
    let request = b"GET /loki/api/v1/labels HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for b in request {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !cut {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(
        up.requests().is_empty(),
        "the slow request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_half_preface_and_idle_connections_are_closed_at_header_read_timeout() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(&up.url(), "", "header_read_timeout = \"300ms\"", ""),
        &[],
    );
    // Nothing at all, and the start of an h2 preface: neither tells the
    // version, and neither may hold the connection.
    for first in [&b""[..], b"PRI * HTT"] {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.write_all(first).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "{:?}: the connection stayed open past header_read_timeout: {other:?}",
                String::from_utf8_lossy(first)
            ),
        }
        assert!(started.elapsed() < Duration::from_secs(4));
    }
    // A keep-alive connection left idle after an answer goes the same way.
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let status = exchange(
        &mut s,
        b"GET /loki/api/v1/labels HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    assert!(
        matches!(s.read(&mut buf), Ok(0)),
        "an idle keep-alive connection stayed open"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // An h2 preface split across two writes within the timeout is served:
    // the server's SETTINGS frame comes back.
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 0x04, "the first frame is SETTINGS: {frame:?}");
    assert_eq!(up.requests().len(), 1, "only the keep-alive request");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_idle_keep_alive_connections_are_held() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (proxy, _f) = ProxyProc::start_with_file(&upstream_toml(&up.url(), "", "", ""), &[]);
    let addr = proxy.addr;
    let conns = tokio::task::spawn_blocking(move || {
        let mut conns = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let status = exchange(
                &mut s,
                b"GET /loki/api/v1/labels HTTP/1.1\r\nHost: x\r\n\r\n",
            );
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            conns.push(s);
        }
        conns
    })
    .await
    .unwrap();
    let rss = proxy.peak_rss_kib();
    eprintln!("2000 idle keep-alive connections held; proxy peak RSS {rss} KiB");
    // Every connection still works after the others were opened.
    let conns = tokio::task::spawn_blocking(move || {
        let mut conns = conns;
        for s in conns.iter_mut().step_by(97) {
            assert!(
                exchange(s, b"GET /loki/api/v1/labels HTTP/1.1\r\nHost: x\r\n\r\n")
                    .starts_with("HTTP/1.1 200")
            );
        }
        conns
    })
    .await
    .unwrap();
    assert_eq!(conns.len(), 2000);
    assert!(!proxy.logs().contains("\"level\":\"ERROR\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_accept_loop_survives_running_out_of_file_descriptors() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let url = up.url();
    // The proxy with 64 descriptors: 100 open connections exhaust them.
    let cmd = proxy::command(&[
        ("LGTM_LISTEN", "127.0.0.1:0"),
        ("LGTM_SHUTDOWN_DELAY", "0s"),
        ("LGTM_LOKI_URL", &url),
        ("LGTM_LOKI_BASIC_AUTH", "false"),
    ]);
    let bin = cmd.get_program().to_owned();
    let mut limited = std::process::Command::new("bash");
    limited.args(["-c", "ulimit -n 64 && exec \"$0\""]).arg(bin);
    limited.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            limited.env(k, v);
        }
    }
    let proxy = ProxyProc::spawn(limited);
    let addr = proxy.addr;
    let held = tokio::task::spawn_blocking(move || {
        (0..100)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        proxy.wait_for_log("accept failed; backing off", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client()
            .request(Request::get(proxy.url("/loki/x")).body(empty()).unwrap())
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not recover from EMFILE"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It backed off rather than spinning: a handful of warnings, not thousands.
    let warnings = proxy.logs().matches("accept failed; backing off").count();
    assert!(warnings < 500, "{warnings} accept warnings: the loop spun");
}

/// One h2 client with many streams open never makes the proxy open more
/// than the upstream's `max_connections`: the streams beyond wait up to
/// `connect_timeout` for a connection and then get 503 naming the setting.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstreams_max_connections_bounds_its_sockets() {
    let up = RecordingUpstream::start(Behavior::Hang).await;
    let (proxy, _f) = ProxyProc::start_with_file(
        &upstream_toml(
            &up.url(),
            "max_connections = 4\nconnect_timeout = \"500ms\"\ntimeout = \"3s\"",
            "",
            "",
        ),
        &[],
    );
    let client = h2c_client();
    let sends: Vec<_> = (0..24)
        .map(|i| {
            let req = Request::get(proxy.url(&format!("/loki/api/v1/labels?i={i}")))
                .body(empty())
                .unwrap();
            let client = client.clone();
            tokio::spawn(async move {
                let res = client.request(req).await.unwrap();
                let status = res.status().as_u16();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for s in sends {
        let (status, body) = proxy.within("a bounded request", s).await.unwrap();
        if status == 503 {
            assert!(body.contains("upstreams.loki.max_connections"), "{body}");
        }
        statuses.push(status);
    }
    // Each connection carries one hung request: at most 4 reached it.
    assert!(
        up.requests().len() <= 4,
        "{} upstream requests",
        up.requests().len()
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 504).count(),
        up.requests().len()
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        24 - up.requests().len(),
        "{statuses:?}"
    );
}
