//! Bad input never panics and never echoes a secret; revocation fails
//! closed; nothing tunnels past the proxy; a loop ends in one 508.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "s3cr3t-token-value";

/// Run the binary with `env` (values as raw bytes) and `args`, bounded: a
/// hang is a failure, not a stuck CI run.
fn run(env: &[(&str, &[u8])], args: &[&str]) -> Output {
    let mut cmd = proxy::command(&[("LGTM_LISTEN", "127.0.0.1:0")]);
    for (k, v) in env {
        cmd.env(k, OsStr::from_bytes(v));
    }
    cmd.args(args);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(id.to_string())
                .status();
            panic!("lgtm-proxy {args:?} hung");
        }
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn non_utf8_environment_is_a_config_error_naming_the_variable_never_its_value() {
    let mut bad = SECRET.as_bytes().to_vec();
    bad.push(0xff);
    let base: [(&str, &[u8]); 2] = [
        ("LGTM_PROMETHEUS_URL", b"http://127.0.0.1:9"),
        ("LGTM_PROMETHEUS_USER", b"1"),
    ];
    for args in [&["check-config"][..], &["serve"][..]] {
        let mut env = base.to_vec();
        env.push(("LGTM_PROMETHEUS_TOKEN", &bad));
        let out = run(&env, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {all}");
        assert!(
            all.contains("LGTM_PROMETHEUS_TOKEN: the value is not valid UTF-8"),
            "{all}"
        );
        assert!(!all.contains(SECRET), "the token leaked: {all}");
        assert!(!all.contains("panicked"), "{all}");
    }
    // An unrelated variable that is not UTF-8 is ignored.
    let mut env = base.to_vec();
    env.push(("LGTM_PROMETHEUS_TOKEN", b"fine"));
    env.push(("SOME_OTHER_TOOL", &bad));
    let out = run(&env, &["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(SECRET));
}

#[test]
fn bad_worker_thread_counts_exit_78_for_check_config_and_serve() {
    for value in [&b"0"[..], b"abc", b"-1", b""] {
        for args in [&["check-config"][..], &["serve"][..]] {
            let env: [(&str, &[u8]); 2] = [
                ("LGTM_LOKI_URL", b"http://127.0.0.1:9"),
                ("TOKIO_WORKER_THREADS", value),
            ];
            let out = run(&env, args);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(78), "{value:?} {args:?}: {all}");
            assert!(all.contains("TOKIO_WORKER_THREADS: must be"), "{all}");
            assert!(!all.contains("panicked"), "{all}");
        }
    }
}

#[test]
fn token_files_that_are_fifos_directories_or_huge_exit_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let huge = dir.path().join("huge");
    std::fs::write(&huge, SECRET.repeat(10_000)).unwrap();
    let directory = dir.path().join("dir");
    std::fs::create_dir(&directory).unwrap();
    for (file, why) in [
        (&fifo, "is not a regular file"),
        (&directory, "is not a regular file"),
        (&huge, "is larger than 65536 bytes"),
    ] {
        let path = file.display().to_string();
        let env: [(&str, &[u8]); 3] = [
            ("LGTM_LOKI_URL", b"http://127.0.0.1:9"),
            ("LGTM_LOKI_USER", b"1"),
            ("LGTM_LOKI_TOKEN_FILE", path.as_bytes()),
        ];
        let started = Instant::now();
        let out = run(&env, &["check-config"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(78), "{path}: {all}");
        assert!(all.contains("upstreams.loki.token_file"), "{all}");
        assert!(all.contains(why), "{all}");
        assert!(!all.contains(SECRET));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn check_config_refuses_an_upstream_that_is_the_proxy_itself() {
    for url in [
        "http://127.0.0.1:18085",
        "http://localhost:18085/x",
        "http://[::1]:18085",
    ] {
        let env: [(&str, &[u8]); 3] = [
            ("LGTM_LISTEN", b"0.0.0.0:18085"),
            ("LGTM_LOKI_URL", url.as_bytes()),
            ("LGTM_LOKI_BASIC_AUTH", b"false"),
        ];
        let out = run(&env, &["check-config"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(78), "{url}: {all}");
        assert!(
            all.contains("upstreams.loki.url: is this proxy's own listen address"),
            "{all}"
        );
    }
    // Another port on the same host is fine.
    let env: [(&str, &[u8]); 3] = [
        ("LGTM_LISTEN", b"0.0.0.0:18085"),
        ("LGTM_LOKI_URL", b"http://127.0.0.1:3100"),
        ("LGTM_LOKI_BASIC_AUTH", b"false"),
    ];
    assert_eq!(run(&env, &["check-config"]).status.code(), Some(0));
}

fn bearer(path: &str, token: &str) -> http::Request<TestBody> {
    http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .unwrap()
}

/// A client's token file emptied, made comment-only, or deleted revokes
/// that client within `watch_interval` while the rest reloads; a tokens
/// file the same; client auth stays on throughout.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_client_credentials_fail_closed_while_the_rest_reloads() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (a, b, list) = (
        write("a", "token-a\n"),
        write("b", "token-b\n"),
        write("list", "# team c\ntoken-c\n"),
    );
    let toml = |extra: &str| {
        format!(
            r#"watch_interval = "200ms"
{extra}
[upstreams.loki]
url = "{url}"
basic_auth = false
[tenants.stage]
client_tokens_file = "{list}"
[tenants.stage.upstreams.loki]
url = "{url}"
basic_auth = false
[[tenants.stage.clients]]
name = "a"
token_file = "{a}"
[[tenants.stage.clients]]
name = "b"
token_file = "{b}"
"#,
            url = up.url()
        )
    };
    let (proxy, file) = ProxyProc::start_with_file(&toml(""), &[]);
    let status = |token: &'static str| {
        let url = proxy.url("/loki/api/v1/labels");
        async move { send(bearer(&url, token)).await.0.as_u16() }
    };
    for t in ["token-a", "token-b", "token-c"] {
        assert_eq!(status(t).await, 200, "{t}");
    }

    // Deleted, and in the same reload another key changes: both apply.
    std::fs::remove_file(dir.path().join("a")).unwrap();
    std::fs::write(file.path(), toml("via_name = \"edge\"")).unwrap();
    let started = Instant::now();
    eventually("token-a is refused", || async {
        status("token-a").await == 401
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status("token-b").await, 200);
    assert!(up.last().headers["via"].to_str().unwrap().contains("edge"));

    // Emptied; then the tokens file made comment-only.
    std::fs::write(dir.path().join("b"), "\n").unwrap();
    eventually("token-b is refused", || async {
        status("token-b").await == 401
    })
    .await;
    std::fs::write(dir.path().join("list"), "# nobody\n").unwrap();
    eventually("token-c is refused", || async {
        status("token-c").await == 401
    })
    .await;
    // Client auth is still required: naming the tenant gets nothing.
    let req = http::Request::get(proxy.url("/loki/api/v1/labels"))
        .header("x-scope-orgid", "stage")
        .body(empty())
        .unwrap();
    assert_eq!(send(req).await.0, 401);
    assert!(proxy.logs().contains("its client tokens are revoked"));
    // Restored: accepted again.
    std::fs::write(dir.path().join("a"), "token-a\n").unwrap();
    eventually("token-a is back", || async {
        status("token-a").await == 200
    })
    .await;
    // Replaced by a FIFO: never read (no hang), revoked all the same, and
    // the watcher keeps going.
    std::fs::remove_file(dir.path().join("a")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.path().join("a"))
        .status()
        .unwrap()
        .success());
    eventually("token-a is refused again", || async {
        status("token-a").await == 401
    })
    .await;
    assert!(proxy.logs().contains("is not a regular file"));
    std::fs::remove_file(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a"), "token-a\n").unwrap();
    eventually("token-a is back again", || async {
        status("token-a").await == 200
    })
    .await;
}

/// `Upgrade: h2c` with `HTTP2-Settings` reaches the upstream as neither;
/// the upstream (which would switch) answers plain HTTP/1.1, and an h2
/// preface sent after the request never reaches it. An upstream that
/// switches anyway gets the client a 502, never a tunnel.
#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_upgrade_never_becomes_a_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that switches to h2c whenever asked, recording bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let always_switch = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (seen, always_switch) = (seen.clone(), always_switch.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let (seen, always_switch) = (seen.clone(), always_switch.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    // One request head at a time (the proxy reuses the
                    // connection); after a switch, every byte is recorded.
                    loop {
                        let mut head = Vec::new();
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = s.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            head.extend_from_slice(&buf[..n]);
                        }
                        seen.lock().unwrap().extend_from_slice(&head);
                        let asked = String::from_utf8_lossy(&head)
                            .to_ascii_lowercase()
                            .contains("upgrade: h2c");
                        if !asked && !always_switch.load(std::sync::atomic::Ordering::SeqCst) {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                            continue;
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                            .await;
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            seen.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        return;
                    }
                });
            }
        });
    }
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &format!("http://{addr}")),
        ("LGTM_LOKI_BASIC_AUTH", "false"),
    ]);
    let exchange = |body_after: &'static [u8]| {
        let addr = proxy.addr;
        async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /loki/api/v1/labels HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").await.unwrap();
            c.write_all(body_after).await.unwrap();
            let mut resp = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut resp))
                .await
                .expect("the proxy answered")
                .unwrap();
            String::from_utf8_lossy(&resp[..n]).into_owned()
        }
    };
    let resp = proxy
        .within("h2c upgrade", exchange(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
        .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let upstream_saw = String::from_utf8_lossy(&seen.lock().unwrap()).to_ascii_lowercase();
    assert!(
        upstream_saw.starts_with("get /loki/api/v1/labels"),
        "{upstream_saw}"
    );
    assert!(!upstream_saw.contains("upgrade"), "{upstream_saw}");
    assert!(!upstream_saw.contains("http2-settings"), "{upstream_saw}");
    assert!(!upstream_saw.contains("pri * http/2.0"), "{upstream_saw}");

    // An upstream that answers 101 to a request that asked for nothing.
    always_switch.store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = proxy.within("unasked 101", exchange(b"")).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
}

/// Two proxies pointed at each other (a Service name a typo away): the
/// first request comes back to the proxy that sent it and ends there in
/// one 508; no descriptor is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_loop_ends_in_one_508_and_leaves_no_descriptors() {
    let port_a = common::prometheus::free_port();
    let a_url = format!("http://127.0.0.1:{port_a}");
    let b = ProxyProc::start(&[("LGTM_LOKI_URL", &a_url), ("LGTM_LOKI_BASIC_AUTH", "false")]);
    let b_url = format!("http://{}", b.addr);
    let a = ProxyProc::start(&[
        ("LGTM_LISTEN", &format!("127.0.0.1:{port_a}")),
        ("LGTM_LOKI_URL", &b_url),
        ("LGTM_LOKI_BASIC_AUTH", "false"),
    ]);
    let fds = |p: &ProxyProc| {
        std::fs::read_dir(format!("/proc/{}/fd", p.pid()))
            .unwrap()
            .count()
    };
    let before = (fds(&a), fds(&b));
    let (s, _, body) = a.within("loop", get(&a.url("/loki/api/v1/labels"))).await;
    // a -> b: b finds its own name (the default via_name) in Via and
    // answers 508, which a passes back; nothing is forwarded twice.
    assert_eq!(s, 508, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("request loop"));
    let (_, _, m) = get(&a.url("/metrics")).await;
    let m = String::from_utf8_lossy(&m);
    assert_eq!(
        sample(&m, &["lgtm_proxy_requests_total{", "status=\"508\""]),
        Some(1.0),
        "{m}"
    );
    // Pooled keep-alive connections between them may stay; nothing grows.
    eventually("descriptors settle", || async {
        fds(&a) <= before.0 + 2 && fds(&b) <= before.1 + 2
    })
    .await;
}

/// check-config prints every effective key (limits, listeners, loop name,
/// namespace bindings, per-route limits) and warns when client auth is off
/// while tenants have clients.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_prints_every_effective_key_and_warns_on_open_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    let toml = format!(
        r#"
max_connections = 100
max_in_flight = 50
admin_listen = "127.0.0.1:18086"
via_name = "edge-1"
require_client_auth = false
[upstreams.loki]
url = "http://127.0.0.1:3100"
basic_auth = false
[[routes]]
prefix = "/team"
upstream = "loki"
rewrite = "/loki"
max_body_bytes = 1048576
[tenants.stage]
namespaces = ["webapp"]
[tenants.stage.upstreams.loki]
[[tenants.stage.clients]]
name = "alloy"
token_file = "{}"
"#,
        token.display()
    );
    let (code, out, err) = proxy::run_cli(&["check-config"], &toml).await;
    assert_eq!(code, 0, "{err}");
    for needle in [
        "max_connections = 100",
        "max_in_flight = 50",
        "admin_listen = \"127.0.0.1:18086\"",
        "via_name = \"edge-1\"",
        "max_body_bytes = 1048576",
        "namespaces = [\"webapp\"]",
        "upgrade_idle_timeout = \"1h\"",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    assert!(
        err.contains("warning: require_client_auth = false while tenants have clients"),
        "{err}"
    );
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
}

/// Found by the metricaccess fuzz target: a YAML alias to an anchor that
/// does not exist made the YAML parser panic, so one team's manifest or
/// rule file crashed the proxy at start (and ended the reload task on a
/// reload). Now it is a problem naming the file, and the proxy serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_yaml_alias_to_no_anchor_is_a_named_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("metricaccess");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(manifests.join("team.yaml"), "c: *h\n").unwrap();
    std::fs::write(rules.join("team.yaml"), "groups: *g\n").unwrap();
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        r#"
[upstreams.prometheus]
url = "{}"
user = "1"
token = "t"
[remote_write]
sources = ["http://127.0.0.1:9"]
manifests_dir = {manifests:?}
[rules_sync]
dir = {rules:?}
interval = "1h"
"#,
        up.url()
    );
    let (code, out, err) = proxy::run_cli(&["check-config"], &toml).await;
    assert_eq!(code, 78, "{out}\n{err}");
    for file in [manifests.join("team.yaml"), rules.join("team.yaml")] {
        let shown = format!("{}: unknown anchor", file.display());
        assert!(err.contains(&shown), "{shown} missing:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    // serve skips the files and serves.
    let (proxy, _file) = ProxyProc::start_with_file(&toml, &[]);
    let (s, _, _) = get(&proxy.url("/prometheus/api/v1/query?query=up")).await;
    assert_eq!(s, 200);
    // The reload loop survived the files: a fixed rule file is reloaded.
    let before = proxy.successful_reloads().await;
    std::fs::write(
        rules.join("team.yaml"),
        "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: up\n",
    )
    .unwrap();
    proxy.signal("HUP");
    eventually("the fixed rule file is reloaded", || async {
        proxy.successful_reloads().await > before
    })
    .await;
    assert!(!proxy.logs().contains("panicked"), "{}", proxy.logs());
}
