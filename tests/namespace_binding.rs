//! Team-written MetricAccess manifests act only for the tenant their
//! namespace is bound to: manifests that name another tenant (by
//! `target.tenant` or `spec.source`), read another namespace's Secret, set
//! identity headers or push outside `allowed_url_prefixes` are refused by
//! check-config and skipped by serve, and no stack ever receives a byte
//! with credentials the manifest's namespace may not use. A namespace that
//! two tenants list acts for the one it names, and no third. A real
//! Prometheus is the source; recording upstreams are the stacks.

mod common;

use std::path::Path;
use std::time::Duration;

use common::prometheus::Prometheus;
use common::proxy;
use common::*;

const SOURCE_YML: &str = r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: a
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
        labels: {namespace: team-a}
  - job_name: shared
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
        labels: {namespace: shared}
"#;

fn manifest(name: &str, namespace: &str, spec_source: &str, remote_write: &str) -> String {
    format!(
        "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec_source}  metrics: [\"up\"]\n  remoteWrite:\n    interval: 1s\n{remote_write}"
    )
}

fn grafana_cloud(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("    target: {{type: grafana_cloud, tenant: {t}}}\n"),
        None => "    target: {type: grafana_cloud}\n".to_string(),
    }
}

fn external(url: &str, extra: &str) -> String {
    format!("    target: {{type: remote_write}}\n    remoteWrite:\n      url: {url}\n{extra}")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_act_only_for_their_namespaces_tenant() {
    let src = Prometheus::start(&[], SOURCE_YML, false);
    let stage = RecordingUpstream::start(Behavior::Ok).await;
    let prod = RecordingUpstream::start(Behavior::Ok).await;
    let qa = RecordingUpstream::start(Behavior::Ok).await;
    let outside = RecordingUpstream::start(Behavior::Ok).await;
    let allowed = RecordingUpstream::start(Behavior::Ok).await;
    let manifests = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    // team-b's Secret, mounted as the overlay mounts namespaced Secrets.
    std::fs::create_dir_all(secrets.path().join("team-b/b-secret")).unwrap();
    write(
        &secrets.path().join("team-b/b-secret"),
        "password",
        "team-b-password\n",
    );
    let m = manifests.path();
    let ext = |path: &str| format!("{}{path}", allowed.url());
    let refused = [
        (
            "a-names-prod.yaml",
            manifest("x1", "team-a", "", &grafana_cloud(Some("prod"))),
            "spec.remoteWrite.target.tenant: names tenant \"prod\", but namespace team-a may act only for stage",
        ),
        (
            "a-source-prod.yaml",
            manifest("x2", "team-a", "  source: prod\n", &grafana_cloud(None)),
            "spec.source: names tenant \"prod\", but namespace team-a may act only for stage",
        ),
        (
            "a-reads-b-secret.yaml",
            manifest(
                "x3",
                "team-a",
                "",
                &external(
                    &ext("/api/v1/write"),
                    "      basicAuth: {username: u, passwordSecret: {name: b-secret, key: password}}\n",
                ),
            ),
            "team-a/b-secret/password",
        ),
        (
            "a-sets-orgid.yaml",
            manifest(
                "x4",
                "team-a",
                "",
                &external(&ext("/api/v1/write"), "      headers: {X-Scope-OrgID: prod}\n"),
            ),
            "\"X-Scope-OrgID\" is not a header this target may set",
        ),
        (
            "a-outside-prefix.yaml",
            manifest(
                "x5",
                "team-a",
                "",
                &external(&format!("{}/api/v1/write", outside.url()), ""),
            ),
            "is outside remote_write.allowed_url_prefixes",
        ),
        (
            "shared-names-qa.yaml",
            manifest("x6", "shared", "", &grafana_cloud(Some("qa"))),
            "names tenant \"qa\", but namespace shared may act only for prod, stage",
        ),
        (
            "shared-names-none.yaml",
            manifest("x7", "shared", "", &grafana_cloud(None)),
            "namespace shared is listed by tenants prod, stage: name one of them",
        ),
    ];
    for (file, text, _) in &refused {
        write(m, file, text);
    }
    write(
        m,
        "a-ok.yaml",
        &manifest("ok-a", "team-a", "", &grafana_cloud(None)),
    );
    write(
        m,
        "shared-prod.yaml",
        &manifest("ok-shared", "shared", "", &grafana_cloud(Some("prod"))),
    );
    let toml = format!(
        r#"
[tenants.stage]
namespaces = ["team-a", "shared"]
[tenants.stage.upstreams.prometheus]
url = "{stage}"
user = "111"
token = "stage-stack-token"
[tenants.prod]
namespaces = ["team-b", "shared"]
[tenants.prod.upstreams.prometheus]
url = "{prod}"
user = "222"
token = "prod-stack-token"
[tenants.qa.upstreams.prometheus]
url = "{qa}"
user = "333"
token = "qa-stack-token"

[remote_write]
sources = ["{src}"]
manifests_dir = "{m}"
secrets_dir = "{secrets}"
allowed_url_prefixes = ["{allowed}/"]
"#,
        stage = stage.url(),
        prod = prod.url(),
        qa = qa.url(),
        src = src.url(),
        m = m.display(),
        secrets = secrets.path().display(),
        allowed = allowed.url(),
    );

    // check-config: exit 78, each refused manifest named with its field.
    let (code, stdout, stderr) = proxy::run_cli(&["check-config"], &toml).await;
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stdout.contains(&format!("allowed_url_prefixes = [\"{}/\"]", allowed.url())),
        "{stdout}"
    );
    for (file, _, why) in &refused {
        let line = stderr
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file} not reported:\n{stderr}"));
        assert!(line.contains(why), "{file}: {line}");
    }
    assert!(
        !stderr.contains("ok-a") && !stderr.contains("shared-prod.yaml"),
        "{stderr}"
    );
    assert!(!stderr.contains("team-b-password") && !stderr.contains("stack-token"));

    // serve: the two bound manifests push with their tenant's credentials;
    // nothing else reaches any stack or URL.
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("stage and prod receive pushes", || async {
        !stage.requests().is_empty() && !prod.requests().is_empty()
    })
    .await;
    // A few more intervals, for anything that should not happen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in stage.requests() {
        assert_eq!(
            r.headers["authorization"],
            basic("111", "stage-stack-token").as_str()
        );
    }
    for r in prod.requests() {
        assert_eq!(
            r.headers["authorization"],
            basic("222", "prod-stack-token").as_str()
        );
    }
    assert!(qa.requests().is_empty(), "qa's credentials were used");
    assert!(
        outside.requests().is_empty(),
        "a URL outside the prefixes got a push"
    );
    assert!(allowed.requests().is_empty(), "a refused manifest pushed");
    assert!(proxy.logs().contains("MetricAccess manifest skipped"));
    assert!(!proxy.logs().contains("team-b-password"));
}
