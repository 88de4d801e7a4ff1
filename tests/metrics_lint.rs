//! The proxy's /metrics, with every labelled series present (requests,
//! durations, bytes, an upstream error, an auth failure, credentials age),
//! passes `promtool check metrics` (Debian's prometheus package), and
//! every metric the deploy's alert rules use is one the proxy exposes.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::proxy;
use common::*;
use http::Request;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_check_metrics() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dead = closed_port_url();
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("client");
    std::fs::write(&tok, "client-token\n").unwrap();
    // Rules sync: the ops tenant's ruler is a Mimir (success, a created
    // group); the others' rulers answer nonsense (failure).
    let mimir = common::mimir::Mimir::start().await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("ops.yaml"),
        "tenant: ops\ngroups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n",
    )
    .unwrap();
    std::fs::write(rules.path().join("bad.yaml"), "tenant: ops\ngroups: 3\n").unwrap();
    let toml = format!(
        "require_client_auth = false\n[upstreams.prometheus]\nurl = \"{u}\"\nuser = \"1\"\ntoken = \"t\"\n[upstreams.loki]\nurl = \"{dead}\"\nuser = \"2\"\ntoken = \"t\"\n[tenants.stage.upstreams.prometheus]\nuser = \"3\"\n[[tenants.stage.clients]]\nname = \"c\"\ntoken_file = \"{t}\"\n[tenants.ops.upstreams.prometheus]\nurl = \"{m}\"\nuser = \"4\"\n[rules_sync]\ndir = \"{r}\"\n",
        u = up.url(),
        t = tok.display(),
        m = mimir.url(),
        r = rules.path().display(),
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
    assert!(
        wait_for_metric(
            &proxy.url(""),
            "lgtm_proxy_rules_sync_changes_total{action=\"create\",ruler=\"mimir\",tenant=\"ops\"} 1"
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
        "lgtm_proxy_rules_sync_last_success_timestamp_seconds{ruler=\"mimir\",tenant=\"ops\"}",
        "lgtm_proxy_rules_sync_total{result=\"failure\",ruler=\"mimir\",tenant=\"default\"} 1",
        "lgtm_proxy_rules_invalid_files 1",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // Every lgtm_proxy_* and process_* name in the alert rules and the
    // dashboard exists here (a histogram counts by its _bucket series).
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = [
        "/deploy/kustomize/base/prometheusrule.yaml",
        "/deploy/dashboards/lgtm-proxy.json",
    ]
    .map(|f| std::fs::read_to_string(format!("{root}{f}")).unwrap())
    .concat();
    let mut referenced: Vec<&str> = ["lgtm_proxy_", "process_"]
        .iter()
        .flat_map(|p| rules.match_indices(p))
        .map(|(i, _)| {
            let rest = &rules[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    referenced.sort_unstable();
    referenced.dedup();
    assert!(referenced.len() >= 12, "{referenced:?}");
    for name in referenced {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "the rules use {name}, which /metrics does not expose"
        );
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

/// The PrometheusRule's groups pass `promtool check rules` (its shape and
/// runbook links: tests/deploy_manifests.rs).
#[test]
fn deploy_alert_rules_pass_promtool() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kustomize/base/prometheusrule.yaml"
    ))
    .unwrap();
    // The rule groups are the `spec:` block, indented by two spaces.
    let spec = yaml.split("\nspec:\n").nth(1).expect("a spec block");
    let groups: String = spec
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, groups).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool saw every rule the file holds.
    let rules = yaml
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("- alert:") || l.starts_with("- record:")
        })
        .count();
    assert!(rules >= 13, "{rules} rules");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {rules} rules found")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The multi-tenant overlay's config is valid (its secret paths pointed at
/// files made here).
#[test]
fn multi_tenant_overlay_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kustomize/overlays/multi-tenant/lgtm-proxy.toml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = proxy::with_local_secrets(&text, dir.path())
        .replace(
            "/etc/lgtm-proxy-metricaccess",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/kustomize/overlays/multi-tenant/metricaccess"
            ),
        )
        .replace(
            "/etc/lgtm-proxy-rules",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/kustomize/overlays/multi-tenant/rules"
            ),
        );
    let path = dir.path().join("lgtm-proxy.toml");
    std::fs::write(&path, config).unwrap();
    let out = proxy::command(&[])
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[tenants.stage.upstreams.prometheus]")
            && stdout.contains("name = \"kubecost\"")
            && stdout.contains("name = \"webapp-infra\"")
            && stdout.contains("/api/prom/push"),
        "{stdout}"
    );
    // The rule files reach stage's and prod's rulers, none is invalid.
    assert!(
        stdout.contains("lgtm-webapp-webapp-rules = [\"webapp.recording\", \"webapp.alerts\"]")
            && stdout.contains("lgtm-payments-payments-slo = [\"payments.slo\"]")
            && stdout.contains("tenants = [\"prod\"]"),
        "{stdout}"
    );
}
