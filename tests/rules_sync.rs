//! Rules sync end to end: the proxy binary against an in-process Mimir
//! ruler configuration API (per-org state, credentials checked, every call
//! recorded), PrometheusRule and plain rule files labelled for two tenants,
//! and the groups the ruler received checked by promtool and evaluated by
//! a real Prometheus.

mod common;

use std::path::Path;
use std::process::Command;

use common::mimir::{Call, Mimir};
use common::prometheus::Prometheus;
use common::*;

const STAGE_ORG: &str = "111";
const PROD_ORG: &str = "222";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules");
const STAGE_NS: &str = "lgtm-webapp-webapp-rules";

/// A Mimir that only answers each org with that tenant's credentials.
async fn mimir() -> Mimir {
    let m = Mimir::start().await;
    m.require_auth(STAGE_ORG, &basic(STAGE_ORG, "stage-token"));
    m.require_auth(PROD_ORG, &basic(PROD_ORG, "prod-token"));
    m
}

/// Two tenants, each with its own ruler credentials (prod's ruler at
/// `prod_url`) and the Kubernetes namespace whose PrometheusRules act for
/// it, and the rules directory.
fn config(stage_url: &str, prod_url: &str, dir: &Path, interval: &str) -> String {
    format!(
        r#"
watch_interval = "100ms"
[tenants.stage]
namespaces = ["webapp"]
[tenants.stage.upstreams.prometheus]
url = "{stage_url}"
user = "{STAGE_ORG}"
token = "stage-token"
timeout = "5s"
[tenants.prod]
namespaces = ["payments"]
[tenants.prod.upstreams.prometheus]
url = "{prod_url}"
user = "{PROD_ORG}"
token = "prod-token"
timeout = "5s"
[rules_sync]
dir = "{dir}"
interval = "{interval}"
"#,
        dir = dir.display()
    )
}

fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(FIXTURES).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

/// Replace a file in one step, as a ConfigMap update does.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn changes_since(m: &Mimir, n: usize, org: &str) -> Vec<String> {
    m.calls()[n..]
        .iter()
        .filter(|c| c.org == org && c.method != "GET")
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

fn groups(m: &Mimir, org: &str) -> Vec<(String, Vec<String>)> {
    m.groups(org).into_iter().collect()
}

fn owned(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|(ns, gs)| (ns.to_string(), gs.iter().map(|g| g.to_string()).collect()))
        .collect()
}

async fn metrics_text(proxy: &ProxyProc) -> String {
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_each_tenant_and_follows_every_file_change() {
    let m = mimir().await;
    // Someone else's namespace (no prefix), a group that vanished from a
    // namespace the proxy owns, and a stale namespace from an earlier run.
    m.seed_group(
        STAGE_ORG,
        "team-owned",
        "name: manual\nrules: [{record: a, expr: up}]\n",
    );
    m.seed_group(
        STAGE_ORG,
        STAGE_NS,
        "name: old-group\nrules: [{record: a, expr: up}]\n",
    );
    m.seed_group(
        PROD_ORG,
        "lgtm-gone-rules",
        "name: stale\nrules: [{record: a, expr: up}]\n",
    );
    let dir = rules_dir();
    let toml = config(&m.url(), &m.url(), dir.path(), "1h");
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);

    let want_stage = owned(&[
        (STAGE_NS, &["webapp.alerts", "webapp.recording"]),
        ("team-owned", &["manual"]),
    ]);
    let want_prod = owned(&[
        ("lgtm-payments-payments-slo", &["payments.slo"]),
        ("lgtm-prod-plain", &["platform"]),
    ]);
    eventually("both tenants' rulers in sync", || async {
        groups(&m, STAGE_ORG) == want_stage && groups(&m, PROD_ORG) == want_prod
    })
    .await;
    let calls = m.calls();
    // Every call carried the tenant's own credentials (the ruler refuses
    // others with 401, and none were refused), bodies were YAML groups.
    for c in &calls {
        let want = if c.org == STAGE_ORG {
            basic(STAGE_ORG, "stage-token")
        } else {
            assert_eq!(c.org, PROD_ORG, "{c:?}");
            basic(PROD_ORG, "prod-token")
        };
        assert_eq!(c.authorization, want, "{c:?}");
        assert!(
            !c.path.contains("team-owned"),
            "touched another tool's namespace: {c:?}"
        );
        if c.method == "POST" {
            assert_eq!(c.content_type, "application/yaml");
            let g: serde_yaml_ng::Value = serde_yaml_ng::from_str(&c.body).unwrap();
            assert!(
                g["name"].is_string() && g["rules"].is_sequence(),
                "{}",
                c.body
            );
        }
    }
    let alerts = m.group(STAGE_ORG, STAGE_NS, "webapp.alerts").unwrap();
    assert_eq!(alerts["rules"][1]["for"], "5m");
    assert_eq!(alerts["rules"][1]["keep_firing_for"], "1m");
    assert_eq!(alerts["rules"][0]["labels"]["environment"], "stage");
    let deletes: Vec<&Call> = calls.iter().filter(|c| c.method == "DELETE").collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    eventually("metrics of the first pass", || async {
        let t = metrics_text(&proxy).await;
        sample(
            &t,
            &[
                "lgtm_proxy_rules_sync_total{",
                "ruler=\"mimir\"",
                "tenant=\"stage\"",
                "result=\"success\"",
            ],
        ) == Some(1.0)
            && sample(
                &t,
                &[
                    "lgtm_proxy_rules_sync_total{",
                    "tenant=\"prod\"",
                    "result=\"success\"",
                ],
            ) == Some(1.0)
    })
    .await;
    let t = metrics_text(&proxy).await;
    assert_eq!(
        sample(
            &t,
            &["lgtm_proxy_rules_groups{ruler=\"mimir\",tenant=\"stage\"}"]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            &["lgtm_proxy_rules_groups{ruler=\"mimir\",tenant=\"prod\"}"]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            &[
                "lgtm_proxy_rules_sync_changes_total{",
                "action=\"delete\"",
                "ruler=\"mimir\"",
                "tenant=\"prod\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &t,
            &[
                "lgtm_proxy_rules_sync_changes_total{",
                "action=\"create\"",
                "tenant=\"stage\""
            ]
        ),
        Some(2.0)
    );
    assert!(
        sample(
            &t,
            &["lgtm_proxy_rules_sync_last_success_timestamp_seconds{ruler=\"mimir\",tenant=\"stage\"}"]
        )
        .unwrap()
            > 1e9
    );
    assert!(!t.contains("stage-token") && !proxy.logs().contains("stage-token"));

    // An edit updates exactly that group.
    let n = m.calls().len();
    let stage_file = dir.path().join("stage-webapp.yaml");
    let text = std::fs::read_to_string(&stage_file).unwrap();
    replace(
        &stage_file,
        &text.replace("severity: warning", "severity: info"),
    );
    eventually("the edited group reaches the ruler", || async {
        m.group(STAGE_ORG, STAGE_NS, "webapp.alerts").unwrap()["rules"][0]["labels"]["severity"]
            == "info"
    })
    .await;
    assert_eq!(
        changes_since(&m, n, STAGE_ORG),
        [format!("POST /api/prom/config/v1/rules/{STAGE_NS}")]
    );
    assert!(changes_since(&m, n, PROD_ORG).is_empty());

    // Removing a file deletes exactly its groups.
    let n = m.calls().len();
    std::fs::remove_file(dir.path().join("prod-plain.yml")).unwrap();
    eventually("the removed file's group is deleted", || async {
        !m.groups(PROD_ORG).contains_key("lgtm-prod-plain")
    })
    .await;
    assert_eq!(
        changes_since(&m, n, PROD_ORG),
        ["DELETE /api/prom/config/v1/rules/lgtm-prod-plain/platform"]
    );
    assert!(changes_since(&m, n, STAGE_ORG).is_empty());
    assert_eq!(groups(&m, STAGE_ORG), want_stage);

    // A file broken by an edit is reported by file and field; its groups
    // stay as they were, and another file still syncs.
    let n = m.calls().len();
    replace(
        &dir.path().join("stage-extra.yaml"),
        &text.replace("webapp-rules", "webapp-extra"),
    );
    replace(&stage_file, &text.replace("vector(1) > 0", "vector(1) >"));
    eventually("the other file syncs", || async {
        m.groups(STAGE_ORG).contains_key("lgtm-webapp-webapp-extra")
    })
    .await;
    assert!(proxy.wait_for_log(
        "stage-webapp.yaml: spec.groups[1].rules[0].expr: invalid PromQL",
        std::time::Duration::from_secs(10)
    ));
    eventually("the invalid file is counted", || async {
        sample(
            &metrics_text(&proxy).await,
            &["lgtm_proxy_rules_invalid_files "],
        ) == Some(1.0)
    })
    .await;
    assert!(
        m.groups(STAGE_ORG)[STAGE_NS].len() == 2,
        "kept while invalid"
    );
    assert!(changes_since(&m, n, STAGE_ORG)
        .iter()
        .all(|c| c.starts_with("POST /api/prom/config/v1/rules/lgtm-webapp-webapp-extra")));
    let (status, _, body) = get(&proxy.url("/health")).await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["rules_sync"]["stage"]["state"], "ok", "{health}");
    assert_eq!(health["rules_sync"]["prod"]["groups"], 1, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_repairs_drift_on_the_ruler() {
    let m = mimir().await;
    let dir = rules_dir();
    let toml = config(&m.url(), &m.url(), dir.path(), "1s");
    let (_proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("first sync", || async {
        m.group(PROD_ORG, "lgtm-prod-plain", "platform").is_some()
    })
    .await;
    m.remove_group(PROD_ORG, "lgtm-prod-plain", "platform");
    eventually("the group is put back", || async {
        m.group(PROD_ORG, "lgtm-prod-plain", "platform").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_only_reads() {
    let m = mimir().await;
    m.seed_group(
        STAGE_ORG,
        "lgtm-old",
        "name: leftover\nrules: [{record: a, expr: up}]\n",
    );
    m.seed_group(
        STAGE_ORG,
        "team-owned",
        "name: manual\nrules: [{record: a, expr: up}]\n",
    );
    let dir = rules_dir();
    let toml = config(&m.url(), &m.url(), dir.path(), "1m");
    let (code, out, err) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for line in [
        &format!(
            "tenant stage mimir ruler ({}/api/prom/config/v1/rules):",
            m.url()
        ),
        &format!("  create {STAGE_NS}/webapp.recording"),
        &format!("  create {STAGE_NS}/webapp.alerts"),
        "  delete lgtm-old/leftover",
        "tenant prod mimir ruler (",
        "  create lgtm-prod-plain/platform",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("team-owned"), "{out}");
    assert!(
        m.calls().iter().all(|c| c.method == "GET"),
        "{:?}",
        m.calls()
    );
    assert!(m.groups(STAGE_ORG).contains_key("lgtm-old"));

    // Applied once, a second plan is empty.
    let (code, out, err) = proxy::run_cli(&["rules-sync"], &toml).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!m.groups(STAGE_ORG).contains_key("lgtm-old"));
    let (code, out, _) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 0);
    assert!(out.contains("2 unchanged, 0 change(s)"), "{out}");

    // An invalid file: 78, naming file and field; the plan still printed.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "tenant: stage\ngroups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n",
    )
    .unwrap();
    let (code, out, err) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 78, "{out}\n{err}");
    assert!(
        err.contains("broken.yaml: groups[0].rules[0].expr: invalid PromQL"),
        "{err}"
    );
    assert!(out.contains("tenant stage"), "{out}");
    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    let (code, _, err) = proxy::run_cli(&["check-config"], &toml).await;
    assert_eq!(code, 0, "{err}");

    // An unreachable ruler: 1, naming the tenant; the other is planned.
    let toml = config(&m.url(), &closed_port_url(), dir.path(), "1m");
    let (code, out, err) = proxy::run_cli(&["rules-sync", "--dry-run"], &toml).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("tenant prod: mimir ruler unreachable"),
        "{err}"
    );
    assert!(
        out.contains("tenant stage") && out.contains("0 change(s)"),
        "{out}"
    );
    assert!(!out.contains("stage-token") && !err.contains("prod-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_and_a_real_prometheus_accept_what_the_ruler_received() {
    let m = mimir().await;
    let dir = rules_dir();
    let (code, out, err) = proxy::run_cli(
        &["rules-sync"],
        &config(&m.url(), &m.url(), dir.path(), "1m"),
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    // The groups exactly as POSTed, in one Prometheus rule file.
    let bodies: Vec<serde_yaml_ng::Value> = m
        .calls()
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| serde_yaml_ng::from_str(&c.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 4);
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules.yml");
    let mut file = serde_yaml_ng::Mapping::new();
    file.insert("groups".into(), serde_yaml_ng::Value::Sequence(bodies));
    std::fs::write(&rules, serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");

    let yml = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{:?}]\nscrape_configs:\n  - job_name: self\n    static_configs: [{{targets: [\"127.0.0.1:{{PORT}}\"]}}]\n",
        rules.display().to_string()
    );
    let prom = Prometheus::start(&[], &yml, false);
    eventually("the recording rules produce series", || async {
        !prom.query("job:up:sum", false).await.is_empty()
            && !prom
                .query("instance:prometheus_tsdb_head_series:max", false)
                .await
                .is_empty()
    })
    .await;
    eventually("the alert fires", || async {
        !prom
            .query(
                r#"ALERTS{alertname="AlwaysFiring",alertstate="firing",environment="stage"}"#,
                false,
            )
            .await
            .is_empty()
    })
    .await;
    let (_, _, body) = get(&format!("{}/api/v1/rules", prom.url())).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let groups = v["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
        }
    }
}

/// A PrometheusRule acts only for the tenant its namespace is bound to: a
/// `tenant` label naming another tenant gets nothing written anywhere, and
/// resources in namespaces no tenant lists reach only the default tenant
/// (which has no ruler here), while the rest syncs. (Colliding ruler
/// namespaces: `rules_sync::load` unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_files_never_write_outside_their_namespaces_tenant() {
    let m = mimir().await;
    let dir = rules_dir();
    let stage_rule = std::fs::read_to_string(dir.path().join("stage-webapp.yaml")).unwrap();
    // webapp is stage's: a label naming prod is refused.
    std::fs::write(
        dir.path().join("cross.yaml"),
        stage_rule
            .replace("name: webapp-rules", "name: steal")
            .replace("tenant: stage", "tenant: prod"),
    )
    .unwrap();
    // Unbound namespaces: the default tenant only, which has no ruler here.
    for (file, ns, name) in [
        ("c1.yaml", "team-a", "x-rules"),
        ("c2.yaml", "team-a-x", "rules"),
    ] {
        std::fs::write(
            dir.path().join(file),
            stage_rule
                .replace("namespace: webapp", &format!("namespace: {ns}"))
                .replace("name: webapp-rules", &format!("name: {name}"))
                .replace("    tenant: stage\n", ""),
        )
        .unwrap();
    }
    let toml = config(&m.url(), &m.url(), dir.path(), "1h");
    let (code, _, stderr) = proxy::run_cli(&["check-config"], &toml).await;
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("cross.yaml: metadata.labels.tenant: names tenant \"prod\", but namespace webapp may act only for stage"),
        "{stderr}"
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("both tenants' rulers in sync", || async {
        groups(&m, STAGE_ORG).iter().any(|(ns, _)| ns == STAGE_NS)
            && groups(&m, PROD_ORG)
                .iter()
                .any(|(ns, _)| ns == "lgtm-payments-payments-slo")
    })
    .await;
    for call in m.calls() {
        assert!(
            !call.path.contains("steal") && !call.path.contains("team-a"),
            "{call:?}"
        );
    }
    assert!(proxy.logs().contains("cross.yaml"), "{}", proxy.logs());
}
