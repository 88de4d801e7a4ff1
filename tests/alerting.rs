//! Multi-tenant alerting through the proxy (seed 002): two real
//! Alertmanagers (one per tenant, basic auth, served under /alertmanager
//! as Mimir serves it) driven by amtool with client tokens, and the Mimir
//! Alertmanager configuration and ruler APIs (an in-process Mimir, since a
//! plain Alertmanager has neither) with their access classes.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::alertmanager::Alertmanager;
use common::mimir::Mimir;
use common::*;

fn token_file(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{name}-secret\n")).unwrap();
    p.display().to_string()
}

/// amtool against the proxy's /alertmanager route with a client token.
async fn amtool(proxy: &ProxyProc, token: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let http = dir.path().join("http.yml");
    std::fs::write(&http, format!("authorization:\n  credentials: {token}\n")).unwrap();
    let mut cmd = Command::new("amtool");
    cmd.arg(format!("--alertmanager.url={}", proxy.url("/alertmanager")))
        .arg(format!("--http.config.file={}", http.display()))
        .args(args);
    let out = tokio::task::spawn_blocking(move || {
        cmd.output()
            .expect("amtool (Debian's prometheus-alertmanager; scripts/test.sh installs it)")
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A request through the proxy with a client token.
async fn call(
    proxy: &ProxyProc,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(proxy.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/yaml")
        .body(full(body.to_string()))
        .unwrap();
    let (status, _, body) = send(req).await;
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_through_the_proxy_reaches_only_the_clients_tenant() {
    let stage_am = Alertmanager::start("stage-am-pass");
    let prod_am = Alertmanager::start("prod-am-pass");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[tenants.stage.upstreams.alertmanager]
url = "{stage}"
user = "{user}"
token = "stage-am-pass"
[[tenants.stage.clients]]
name = "stage-writer"
token_file = "{sw}"
access = ["read", "write"]
[[tenants.stage.clients]]
name = "stage-reader"
token_file = "{sr}"
access = ["read"]
[tenants.prod.upstreams.alertmanager]
url = "{prod}"
user = "{user}"
token = "prod-am-pass"
[[tenants.prod.clients]]
name = "prod-writer"
token_file = "{pw}"
access = ["read", "write"]
"#,
        stage = stage_am.url(),
        prod = prod_am.url(),
        user = common::prometheus::USER,
        sw = token_file(dir.path(), "stage-writer"),
        sr = token_file(dir.path(), "stage-reader"),
        pw = token_file(dir.path(), "prod-writer"),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);

    let (ok, out) = amtool(
        &proxy,
        "stage-writer-secret",
        &[
            "alert",
            "add",
            "alertname=StageTest",
            "severity=warning",
            "--annotation=summary=from stage",
        ],
    )
    .await;
    assert!(ok, "{out}");
    eventually("the alert is in stage's Alertmanager", || async {
        names(&stage_am.get_json("/api/v2/alerts").await) == ["StageTest"]
    })
    .await;
    let (ok, out) = amtool(
        &proxy,
        "stage-writer-secret",
        &[
            "silence",
            "add",
            "alertname=StageTest",
            "--comment=maintenance",
            "--author=ci",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let silence_id = out.trim().to_string();
    let silences = stage_am.get_json("/api/v2/silences").await;
    assert_eq!(silences.as_array().unwrap().len(), 1, "{silences}");
    assert_eq!(silences[0]["id"], silence_id.as_str());
    assert_eq!(silences[0]["createdBy"], "ci");

    // prod's Alertmanager saw nothing, and prod's client sees nothing.
    assert!(prod_am
        .get_json("/api/v2/alerts")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(prod_am
        .get_json("/api/v2/silences")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let (ok, out) = amtool(
        &proxy,
        "prod-writer-secret",
        &["alert", "query", "--active", "--silenced", "-o", "json"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(!out.contains("StageTest"), "{out}");

    // A read-only client reads, and can neither silence nor expire.
    let (ok, out) = amtool(
        &proxy,
        "stage-reader-secret",
        &["alert", "query", "--active", "--silenced"],
    )
    .await;
    assert!(ok && out.contains("StageTest"), "{out}");
    let (ok, out) = amtool(
        &proxy,
        "stage-reader-secret",
        &[
            "silence",
            "add",
            "alertname=Other",
            "--comment=no",
            "--author=reader",
        ],
    )
    .await;
    assert!(!ok, "a reader added a silence: {out}");
    let (ok, out) = amtool(
        &proxy,
        "stage-reader-secret",
        &["silence", "expire", &silence_id],
    )
    .await;
    assert!(!ok, "a reader expired a silence: {out}");
    let (ok, out) = amtool(
        &proxy,
        "stage-reader-secret",
        &["alert", "add", "alertname=Nope"],
    )
    .await;
    assert!(!ok, "a reader added an alert: {out}");
    let silences = stage_am.get_json("/api/v2/silences").await;
    assert_eq!(silences.as_array().unwrap().len(), 1);
    assert_eq!(silences[0]["status"]["state"], "active");
    assert_eq!(
        names(&stage_am.get_json("/api/v2/alerts").await),
        ["StageTest"]
    );
    // Nor change the Alertmanager configuration (admin only).
    for token in ["stage-reader-secret", "stage-writer-secret"] {
        let (status, body) = call(
            &proxy,
            "POST",
            "/api/v1/alerts",
            token,
            "alertmanager_config: ''",
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("admin"), "{body}");
    }
    let t = String::from_utf8_lossy(&get(&proxy.url("/metrics")).await.2).into_owned();
    assert!(
        sample(&t, &["lgtm_proxy_auth_failures_total{", "forbidden_class"]).unwrap() >= 5.0,
        "{t}"
    );
    assert!(!proxy.logs().contains("stage-am-pass"));
}

const AM_CONFIG: &str = r#"template_files: {}
alertmanager_config: |
  route:
    receiver: ops-default
    group_by: [alertname, cluster]
  receivers:
    - name: ops-default
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mimir_configuration_apis_need_the_admin_class() {
    let m = Mimir::start().await;
    let org_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("333:ops-stack")
    );
    m.require_auth("333", &org_auth);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[tenants.ops.upstreams.alertmanager]
url = "{url}"
user = "333"
token = "ops-stack"
[tenants.ops.upstreams.prometheus]
url = "{url}"
user = "333"
token = "ops-stack"
[[tenants.ops.clients]]
name = "ops-admin"
token_file = "{admin}"
access = ["read", "write", "admin"]
[[tenants.ops.clients]]
name = "ops-writer"
token_file = "{writer}"
access = ["read", "write"]
[[tenants.ops.clients]]
name = "ops-reader"
token_file = "{reader}"
access = ["read"]
"#,
        url = m.url(),
        admin = token_file(dir.path(), "ops-admin"),
        writer = token_file(dir.path(), "ops-writer"),
        reader = token_file(dir.path(), "ops-reader"),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let (admin, writer, reader) = ("ops-admin-secret", "ops-writer-secret", "ops-reader-secret");

    // Alertmanager configuration: reads for readers, changes for admins.
    assert_eq!(
        call(&proxy, "GET", "/api/v1/alerts", reader, "").await.0,
        404
    );
    assert_eq!(
        call(&proxy, "POST", "/api/v1/alerts", admin, AM_CONFIG)
            .await
            .0,
        201
    );
    assert_eq!(m.alertmanager_config("333").as_deref(), Some(AM_CONFIG));
    assert_eq!(
        call(&proxy, "GET", "/api/v1/alerts", reader, "").await,
        (200, AM_CONFIG.to_string())
    );
    for (token, method) in [
        (reader, "POST"),
        (writer, "POST"),
        (writer, "DELETE"),
        (reader, "DELETE"),
    ] {
        let (status, body) = call(
            &proxy,
            method,
            "/api/v1/alerts",
            token,
            "alertmanager_config: ''",
        )
        .await;
        assert_eq!(status, 403, "{method} by {token}: {body}");
    }
    assert_eq!(m.alertmanager_config("333").as_deref(), Some(AM_CONFIG));
    assert_eq!(
        call(&proxy, "DELETE", "/api/v1/alerts", admin, "").await.0,
        200
    );
    assert_eq!(m.alertmanager_config("333"), None);

    // Ruler configuration through /prometheus (rewritten to /api/prom).
    let group = "name: team\nrules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n";
    for token in [reader, writer] {
        let (status, _) = call(
            &proxy,
            "POST",
            "/prometheus/config/v1/rules/team-ns",
            token,
            group,
        )
        .await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        call(
            &proxy,
            "POST",
            "/prometheus/config/v1/rules/team-ns",
            admin,
            group
        )
        .await
        .0,
        202
    );
    let (status, body) = call(&proxy, "GET", "/prometheus/config/v1/rules", reader, "").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("team-ns:") && body.contains("job:up:sum"),
        "{body}"
    );
    assert_eq!(
        call(
            &proxy,
            "DELETE",
            "/prometheus/config/v1/rules/team-ns/team",
            writer,
            ""
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &proxy,
            "DELETE",
            "/prometheus/config/v1/rules/team-ns/team",
            admin,
            ""
        )
        .await
        .0,
        202
    );
    // Every call reached Mimir with the tenant's own credentials and org.
    let calls = m.calls();
    assert_eq!(calls.len(), 7, "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| c.org == "333" && c.authorization == org_auth));
    assert!(calls
        .iter()
        .any(|c| c.path == "/api/prom/config/v1/rules/team-ns"));
}

const AM_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alertmanager");

/// `amtool check-config` (the real Alertmanager's loader): success?
fn amtool_accepts(path: &Path) -> bool {
    Command::new("amtool")
        .arg("check-config")
        .arg(path)
        .output()
        .expect("amtool (Debian's prometheus-alertmanager)")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_config_push_checks_then_posts_with_the_tenants_credentials() {
    let m = Mimir::start().await;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("444:prod-stack")
    );
    m.require_auth("444", &auth);
    let toml = format!(
        "[tenants.prod.upstreams.alertmanager]\nurl = \"{}\"\nuser = \"444\"\ntoken = \"prod-stack\"\n[tenants.stage.upstreams.alertmanager]\nurl = \"{}\"\nuser = \"555\"\ntoken = \"t\"\n",
        m.url(),
        closed_port_url()
    );
    let file = Path::new(AM_FIXTURES).join("prod.yaml");
    let template = Path::new(AM_FIXTURES).join("prod.tmpl");
    assert!(
        amtool_accepts(&file),
        "the fixture is what Alertmanager loads"
    );
    let push = |file: &Path, tenant: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["alertmanager-config", "push"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(file.display().to_string());
        args.push(format!("--tenant={tenant}"));
        args.push(format!("--template={}", template.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let (code, out, err) = proxy::run_cli(&push(&file, "prod", &["--dry-run"]), &toml).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tenant prod: valid; would POST to"), "{out}");
    assert!(m.calls().is_empty());

    let (code, out, err) = proxy::run_cli(&push(&file, "prod", &[]), &toml).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("accepted (201 Created"), "{out}");
    let stored: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&m.alertmanager_config("444").unwrap()).unwrap();
    assert_eq!(
        stored["alertmanager_config"].as_str().unwrap(),
        std::fs::read_to_string(&file).unwrap()
    );
    assert!(stored["template_files"]["prod.tmpl"]
        .as_str()
        .unwrap()
        .contains("define \"prod.title\""));
    let calls = m.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/api/v1/alerts")
    );
    assert_eq!(calls[0].authorization, auth);

    // A route to an undefined receiver: refused here as Alertmanager
    // refuses it, field named, nothing sent.
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("receiver: prod-slack", "receiver: prod-sms"),
    )
    .unwrap();
    assert!(!amtool_accepts(&bad));
    let (code, _, err) = proxy::run_cli(&push(&bad, "prod", &[]), &toml).await;
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("route.routes[1].receiver: receiver \"prod-sms\" is not defined"),
        "{err}"
    );
    assert_eq!(m.calls().len(), 1);

    // An unreachable Alertmanager: 1, naming the tenant; an unknown one: 78.
    let (code, _, err) = proxy::run_cli(&push(&file, "stage", &[]), &toml).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("tenant stage: POST http://127.0.0.1:"),
        "{err}"
    );
    let (code, _, err) = proxy::run_cli(&push(&file, "qa", &[]), &toml).await;
    assert_eq!(code, 78, "{err}");
    assert!(!err.contains("prod-stack"));
}
