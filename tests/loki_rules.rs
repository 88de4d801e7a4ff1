//! Loki rules sync end to end: the proxy binary against an in-process
//! ruler serving Mimir's and Loki's rules APIs side by side (per-org state,
//! credentials checked, every call recorded). Rule files marked for Loki
//! (`lgtm-proxy.io/ruler: loki` on a PrometheusRule, `ruler: loki` in a
//! plain file) reach each tenant's loki upstream at `/loki/api/v1/rules`
//! with that upstream's credentials and org, LogQL verbatim; Mimir's files
//! keep going to Mimir's ruler. Edit, delete, dry-run, the prefix, the
//! namespace binding and a ruler's refusal behave as for Mimir.

mod common;

use std::path::Path;

use common::mimir::Mimir;
use common::*;

/// Mimir's org of stage and the Loki orgs (each upstream's `user`).
const STAGE_METRICS: &str = "111";
const STAGE_LOGS: &str = "stage-logs";
const PROD_LOGS: &str = "prod-logs";
const LOKI_RULES: &str = "/loki/api/v1/rules";
const STAGE_LOKI_NS: &str = "lgtm-webapp-webapp-logs";
const LOGQL: &str = r#"sum by (app) (rate({namespace="webapp"} |= "error" [5m])) > 10"#;

fn config(url: &str, dir: &Path) -> String {
    format!(
        r#"
watch_interval = "100ms"
[tenants.stage]
namespaces = ["webapp"]
[tenants.stage.upstreams.prometheus]
url = "{url}"
user = "{STAGE_METRICS}"
token = "stage-token"
[tenants.stage.upstreams.loki]
url = "{url}"
user = "{STAGE_LOGS}"
token = "stage-logs-token"
[tenants.prod]
namespaces = ["payments"]
[tenants.prod.upstreams.loki]
url = "{url}"
user = "{PROD_LOGS}"
token = "prod-logs-token"
[rules_sync]
dir = "{dir}"
interval = "1h"
"#,
        dir = dir.display()
    )
}

/// A PrometheusRule in Kubernetes namespace `ns` for `tenant`, for the
/// ruler `ruler` (no label when `None`), with one alert on `expr`.
fn resource(name: &str, ns: &str, tenant: &str, ruler: Option<&str>, expr: &str) -> String {
    let ruler = ruler
        .map(|r| format!("\n    lgtm-proxy.io/ruler: {r}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {name}
  namespace: {ns}
  labels:
    tenant: {tenant}{ruler}
spec:
  groups:
    - name: {name}.alerts
      interval: 1m
      rules:
        - alert: {name}Errors
          expr: '{expr}'
          for: 5m
          labels: {{severity: warning}}
"#
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// The files: stage's LogQL alerts (a PrometheusRule for Loki), stage's
/// PromQL alerts (the same shape, for Mimir) and prod's plain Loki file.
fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "webapp-logs.yaml",
        &resource("webapp-logs", "webapp", "stage", Some("loki"), LOGQL),
    );
    write(
        dir.path(),
        "webapp-metrics.yaml",
        &resource("webapp-metrics", "webapp", "stage", None, "up == 0"),
    );
    write(
        dir.path(),
        "payments-logs.yaml",
        "tenant: prod\nruler: loki\ngroups:\n  - name: payments.logs\n    rules:\n      - record: payments:log_lines:rate5m\n        expr: 'sum(rate({app=\"payments\"}[5m]))'\n",
    );
    dir
}

async fn ruler() -> Mimir {
    let m = Mimir::start().await;
    m.require_auth(STAGE_METRICS, &basic(STAGE_METRICS, "stage-token"));
    m.require_auth(STAGE_LOGS, &basic(STAGE_LOGS, "stage-logs-token"));
    m.require_auth(PROD_LOGS, &basic(PROD_LOGS, "prod-logs-token"));
    m
}

fn owned(entries: &[(&str, &[&str])]) -> std::collections::BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(ns, gs)| (ns.to_string(), gs.iter().map(|g| g.to_string()).collect()))
        .collect()
}

async fn health(proxy: &ProxyProc) -> serde_json::Value {
    let (_, _, body) = get(&proxy.url("/health")).await;
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_rules_reach_each_tenants_loki_ruler_and_follow_every_change() {
    let m = ruler().await;
    // Someone else's Loki namespace (no prefix) and a stale one of ours.
    m.seed_loki_group(
        STAGE_LOGS,
        "team-owned",
        "name: manual\nrules: [{alert: A, expr: 'count_over_time({a=\"b\"}[1m]) > 0'}]\n",
    );
    m.seed_loki_group(
        PROD_LOGS,
        "lgtm-gone",
        "name: stale\nrules: [{alert: A, expr: 'count_over_time({a=\"b\"}[1m]) > 0'}]\n",
    );
    let dir = rules_dir();
    let (proxy, _f) = ProxyProc::start_with_file(&config(&m.url(), dir.path()), &[]);

    let want_stage_logs = owned(&[
        (STAGE_LOKI_NS, &["webapp-logs.alerts"]),
        ("team-owned", &["manual"]),
    ]);
    let want_prod_logs = owned(&[("lgtm-payments-logs", &["payments.logs"])]);
    eventually(
        "both Loki rulers and stage's Mimir ruler in sync",
        || async {
            m.loki_groups(STAGE_LOGS) == want_stage_logs
                && m.loki_groups(PROD_LOGS) == want_prod_logs
                && m.groups(STAGE_METRICS)
                    == owned(&[("lgtm-webapp-webapp-metrics", &["webapp-metrics.alerts"])])
        },
    )
    .await;
    // Each signal's rules stayed on its own ruler.
    assert!(m.groups(STAGE_LOGS).is_empty(), "LogQL reached Mimir's API");
    assert!(
        m.loki_groups(STAGE_METRICS).is_empty(),
        "PromQL reached Loki's API"
    );
    // LogQL verbatim, with the loki upstream's credentials and org.
    let g = m
        .loki_group(STAGE_LOGS, STAGE_LOKI_NS, "webapp-logs.alerts")
        .unwrap();
    assert_eq!(g["rules"][0]["expr"], LOGQL);
    assert_eq!(g["rules"][0]["for"], "5m");
    let posts: Vec<_> = m
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.starts_with(LOKI_RULES))
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    for c in &posts {
        let (org, token) = if c.org == STAGE_LOGS {
            (STAGE_LOGS, "stage-logs-token")
        } else {
            (PROD_LOGS, "prod-logs-token")
        };
        assert_eq!(c.authorization, basic(org, token), "{c:?}");
        assert_eq!(c.content_type, "application/yaml");
    }
    assert!(posts
        .iter()
        .any(|c| c.path == format!("{LOKI_RULES}/{STAGE_LOKI_NS}") && c.org == STAGE_LOGS));
    // Metrics by ruler.
    eventually("metrics by ruler", || async {
        let (_, _, body) = get(&proxy.url("/metrics")).await;
        let t = String::from_utf8_lossy(&body).into_owned();
        sample(
            &t,
            &["lgtm_proxy_rules_groups{ruler=\"loki\",tenant=\"stage\"}"],
        ) == Some(1.0)
            && sample(
                &t,
                &["lgtm_proxy_rules_groups{ruler=\"mimir\",tenant=\"stage\"}"],
            ) == Some(1.0)
            && sample(
                &t,
                &["lgtm_proxy_rules_groups{ruler=\"loki\",tenant=\"prod\"}"],
            ) == Some(1.0)
            && sample(
                &t,
                &[
                    "lgtm_proxy_rules_sync_changes_total{",
                    "action=\"delete\"",
                    "ruler=\"loki\"",
                    "tenant=\"prod\"",
                ],
            ) == Some(1.0)
    })
    .await;
    let h = health(&proxy).await;
    assert_eq!(h["rules_sync"]["stage/loki"]["state"], "ok", "{h}");
    assert_eq!(h["rules_sync"]["stage"]["state"], "ok", "{h}");

    // Edit: the new expression replaces the group.
    let edited = LOGQL.replace("> 10", "> 20");
    write(
        dir.path(),
        "webapp-logs.yaml",
        &resource("webapp-logs", "webapp", "stage", Some("loki"), &edited),
    );
    eventually("the edit reaches Loki's ruler", || async {
        m.loki_group(STAGE_LOGS, STAGE_LOKI_NS, "webapp-logs.alerts")
            .is_some_and(|g| g["rules"][0]["expr"] == edited.as_str())
    })
    .await;

    // A ruler's refusal: an expression Loki cannot parse passes the
    // proxy's structure check and lands in last_error with Loki's words;
    // the group on the ruler is left as it was.
    write(
        dir.path(),
        "webapp-logs.yaml",
        &resource("webapp-logs", "webapp", "stage", Some("loki"), "up == 0"),
    );
    eventually("Loki's refusal in /health", || async {
        let h = health(&proxy).await;
        let s = &h["rules_sync"]["stage/loki"];
        s["state"] == "failing"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("400") && e.contains("syntax error"))
    })
    .await;
    assert_eq!(
        m.loki_group(STAGE_LOGS, STAGE_LOKI_NS, "webapp-logs.alerts")
            .unwrap()["rules"][0]["expr"],
        edited.as_str()
    );
    // Mimir's side of the same tenant is unaffected.
    assert_eq!(health(&proxy).await["rules_sync"]["stage"]["state"], "ok");

    // Delete: the file goes, so does its group; nothing else is touched.
    std::fs::remove_file(dir.path().join("webapp-logs.yaml")).unwrap();
    eventually("the deleted file's group is gone", || async {
        m.loki_groups(STAGE_LOGS) == owned(&[("team-owned", &["manual"])])
    })
    .await;
    assert_eq!(
        m.groups(STAGE_METRICS),
        owned(&[("lgtm-webapp-webapp-metrics", &["webapp-metrics.alerts"])])
    );
    assert!(!proxy.logs().contains("stage-logs-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_cannot_aim_loki_rules_at_another_tenant_and_dry_run_only_reads() {
    let m = ruler().await;
    let dir = rules_dir();
    // webapp's namespace may act for stage only: its Loki rules for prod
    // are refused, nothing reaches prod's ruler from it.
    write(
        dir.path(),
        "cross.yaml",
        &resource("cross", "webapp", "prod", Some("loki"), LOGQL),
    );
    // A ruler no one has: refused, naming the label.
    write(
        dir.path(),
        "odd.yaml",
        &resource("odd", "webapp", "stage", Some("tempo"), LOGQL),
    );
    let toml = config(&m.url(), dir.path());
    let (code, out, err) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 78, "{out}\n{err}");
    assert!(
        err.contains("cross.yaml: metadata.labels.tenant: names tenant \"prod\", but namespace webapp may act only for stage"),
        "{err}"
    );
    assert!(
        err.contains("odd.yaml: metadata.labels[\"lgtm-proxy.io/ruler\"]: \"tempo\" is not a ruler (mimir or loki)"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("cross.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("odd.yaml")).unwrap();
    let (code, out, err) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for line in [
        format!("tenant stage loki ruler ({}{LOKI_RULES}):", m.url()),
        format!("  create {STAGE_LOKI_NS}/webapp-logs.alerts"),
        format!("tenant prod loki ruler ({}{LOKI_RULES}):", m.url()),
        "  create lgtm-payments-logs/payments.logs".to_string(),
        format!(
            "tenant stage mimir ruler ({}/api/prom/config/v1/rules):",
            m.url()
        ),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    let calls = m.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.method == "GET"),
        "a dry run wrote: {calls:?}"
    );
    assert!(m.loki_groups(STAGE_LOGS).is_empty() && m.loki_groups(PROD_LOGS).is_empty());

    // The proxy serving the same files (cross.yaml back): prod's Loki
    // ruler gets only prod's own file.
    write(
        dir.path(),
        "cross.yaml",
        &resource("cross", "webapp", "prod", Some("loki"), LOGQL),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("prod's and stage's Loki rulers in sync", || async {
        m.loki_groups(PROD_LOGS) == owned(&[("lgtm-payments-logs", &["payments.logs"])])
            && m.loki_groups(STAGE_LOGS) == owned(&[(STAGE_LOKI_NS, &["webapp-logs.alerts"])])
    })
    .await;
    assert!(proxy.wait_for_log(
        "cross.yaml: metadata.labels.tenant",
        std::time::Duration::from_secs(5)
    ));
}
