//! Tokens never appear in logs (even at trace), /metrics, error bodies or
//! `check-config` output; bad config exits 78 naming the field.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use http::Request;

const TOKEN: &str = "glc_SECRET_never_print_me_4242";

#[tokio::test(flavor = "multi_thread")]
async fn tokens_never_reach_logs_metrics_or_error_bodies() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dead = closed_port_url();
    let proxy = ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &up.url()),
        ("LGTM_PROMETHEUS_USER", "2668285"),
        ("LGTM_LOKI_URL", &dead),
        ("LGTM_LOKI_USER", "1329819"),
        ("LGTM_TOKEN", TOKEN),
        ("LGTM_LOG", "trace"),
    ]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("2668285:{TOKEN}"));
    let client_secret = "client_bearer_SECRET_777";
    let mut bodies = Vec::new();
    for (path, h2) in [
        ("/prometheus/api/v1/query?query=up", false),
        ("/prometheus/api/v1/query", true),
        ("/loki/api/v1/push", false),
        ("/nope", false),
    ] {
        let req = Request::post(proxy.url(path))
            .header("authorization", format!("Bearer {client_secret}"))
            .body(full(&b"payload"[..]))
            .unwrap();
        let res = if h2 { h2c_client() } else { client() }
            .request(req)
            .await
            .unwrap();
        bodies.push(read(res).await.2);
    }
    assert_eq!(
        up.requests().len(),
        2,
        "both prometheus requests went through"
    );
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    assert!(proxy.wait_for_log("\"upstream\":\"loki\"", Duration::from_secs(5)));
    let logs = proxy.logs();
    assert!(logs.lines().count() > 20, "trace logging is on: {logs}");
    for haystack in [logs, String::from_utf8_lossy(&metrics).into_owned()]
        .into_iter()
        .chain(
            bodies
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        )
    {
        for needle in [TOKEN, encoded.as_str(), client_secret] {
            assert!(
                !haystack.contains(needle),
                "{needle} leaked into:\n{haystack}"
            );
        }
    }
}

#[test]
fn check_config_redacts_and_exits_zero() {
    let out = proxy::command(&[
        (
            "LGTM_PROMETHEUS_URL",
            "https://prometheus-prod-56-prod-us-east-2.grafana.net",
        ),
        ("LGTM_PROMETHEUS_USER", "2668285"),
        ("LGTM_TOKEN", TOKEN),
    ])
    .arg("check-config")
    .output()
    .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(TOKEN) && !String::from_utf8_lossy(&out.stderr).contains(TOKEN));
    assert!(stdout.contains("token = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("url = \"https://prometheus-prod-56-prod-us-east-2.grafana.net\""));
}

#[test]
fn invalid_config_exits_78_naming_fields_for_check_config_and_serve() {
    let env = [
        ("LGTM_LOKI_URL", "logs-prod-036.grafana.net"),
        ("LGTM_TEMPO_URL", "https://tempo.example"),
        ("LGTM_TOKEN", TOKEN),
        ("LGTM_PROXY_SERVICE_HOST", "10.0.0.1"),
    ];
    for sub in [Some("check-config"), Some("serve"), None] {
        let mut cmd = proxy::command(&env);
        if let Some(s) = sub {
            cmd.arg(s);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{sub:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("upstreams.loki.url: relative URL without a base"),
            "{err}"
        );
        assert!(err.contains("upstreams.tempo.user: required"), "{err}");
        assert!(
            !err.contains("PROXY_SERVICE"),
            "service-link variables are ignored: {err}"
        );
        assert!(!err.contains(TOKEN));
    }
}

#[test]
fn config_flag_works_before_or_after_the_subcommand_and_by_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lgtm.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:9999\"\n").unwrap();
    let p = path.to_str().unwrap();
    for args in [
        vec!["--config", p, "check-config"],
        vec!["check-config", "--config", p],
    ] {
        let out = proxy::command(&[]).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"127.0.0.1:9999\""));
    }
    let out = proxy::command(&[("LGTM_CONFIG", p)])
        .arg("check-config")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
    // No implicit file: without --config the defaults hold.
    let out = proxy::command(&[]).arg("check-config").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"0.0.0.0:8085\""));
    let out = proxy::command(&[]).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lgtm-proxy "));
}
