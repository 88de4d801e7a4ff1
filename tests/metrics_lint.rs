//! The proxy's /metrics, with every labelled series present (requests,
//! durations, bytes, an upstream error, an auth failure, credentials age),
//! passes `promtool check metrics` (Debian's prometheus package).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use http::Request;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_check_metrics() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dead = closed_port_url();
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("client");
    std::fs::write(&tok, "client-token\n").unwrap();
    let toml = format!(
        "require_client_auth = false\n[upstreams.prometheus]\nurl = \"{u}\"\nuser = \"1\"\ntoken = \"t\"\n[upstreams.loki]\nurl = \"{dead}\"\nuser = \"2\"\ntoken = \"t\"\n[tenants.stage.upstreams.prometheus]\nuser = \"3\"\n[[tenants.stage.clients]]\nname = \"c\"\ntoken_file = \"{t}\"\n",
        u = up.url(),
        t = tok.display()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    send(
        Request::post(proxy.url("/api/prom/push"))
            .body(full(&b"x"[..]))
            .unwrap(),
    )
    .await;
    send(
        Request::get(proxy.url("/prometheus/api/v1/query"))
            .header("authorization", "Bearer client-token")
            .body(empty())
            .unwrap(),
    )
    .await;
    send(
        Request::get(proxy.url("/prometheus/q"))
            .header("x-scope-orgid", "nobody")
            .body(empty())
            .unwrap(),
    )
    .await;
    get(&proxy.url("/loki/api/v1/labels")).await;
    get(&proxy.url("/nope")).await;
    assert!(
        wait_for_metric(
            &proxy.url(""),
            "lgtm_proxy_upstream_errors_total{kind=\"connect\",upstream=\"loki\"} 1"
        )
        .await
    );
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics);
    for name in [
        "lgtm_proxy_requests_total{",
        "lgtm_proxy_request_duration_seconds_bucket{",
        "lgtm_proxy_request_bytes_total{",
        "lgtm_proxy_auth_failures_total{reason=\"unknown_tenant\"} 1",
        "lgtm_proxy_credentials_age_seconds{tenant=\"stage\",upstream=\"prometheus\"}",
        "tenant=\"stage\"",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    promtool.stdin.take().unwrap().write_all(&metrics).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
