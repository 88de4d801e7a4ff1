//! Remote-write jobs end to end, with real peers: a source Prometheus that
//! scrapes itself under three jobs (namespaces webapp-team, other-team and
//! none), receiving Prometheus servers (with and without basic auth), a
//! real Pushgateway, and a recording upstream for the grafana_cloud target
//! (whose push path Prometheus does not serve).

mod common;

use std::time::Duration;

use common::prometheus::{free_port, Prometheus, USER};
use common::pushgateway::Pushgateway;
use common::*;
use lgtm_proxy::remote_write::encode::WriteRequest;

const SOURCE_YML: &str = r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: webapp
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
        labels: {namespace: webapp-team}
  - job_name: other
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
        labels: {namespace: other-team}
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
"#;

const RECEIVER: &[&str] = &["--web.enable-remote-write-receiver"];

fn source() -> Prometheus {
    Prometheus::start(&[], SOURCE_YML, false)
}

fn receiver(auth: bool) -> Prometheus {
    Prometheus::start(RECEIVER, "global: {}\n", auth)
}

/// A config with these sources and one job (namespace webapp-team, pattern
/// `up`, every second) whose target table gets `target` (TOML lines).
fn one_job(sources: &[&str], name: &str, target: &str) -> String {
    format!(
        "[remote_write]\nsources = {sources:?}\n[[remote_write.jobs]]\nname = {name:?}\nnamespace = \"webapp-team\"\nmetrics = [\"up\"]\ninterval = \"1s\"\n[remote_write.jobs.target]\n{target}\n"
    )
}

/// An upstream answering every request with `status` and no body.
async fn answering(status: u16) -> RecordingUpstream {
    RecordingUpstream::start(Behavior::Fixed {
        status,
        headers: vec![],
        body: bytes::Bytes::new(),
    })
    .await
}

async fn metrics(proxy: &ProxyProc) -> String {
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    String::from_utf8_lossy(&body).into_owned()
}

async fn json(proxy: &ProxyProc, path: &str) -> serde_json::Value {
    let (status, _, body) = get(&proxy.url(path)).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_filters_enriches_and_pushes_to_a_real_prometheus() {
    let src = source();
    let target = receiver(false);
    let closed = closed_port_url();
    let toml = format!(
        r#"
[remote_write]
# The same Prometheus twice (merged, de-duplicated) and one that is down.
sources = ["{src}", "http://localhost:{port}", "{closed}"]

[[remote_write.jobs]]
name = "webapp-metrics"
namespace = "webapp-team"
metrics = ["up", '{{__name__="prometheus_build_info"}}']
interval = "1s"
extra_labels = {{ team = "webapp", tenant = "webapp-team" }}
[remote_write.jobs.target]
type = "prometheus"
url = "{target}"
"#,
        src = src.url(),
        port = src.port,
        target = target.url(),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);

    eventually("series arrive at the target", || async {
        !target
            .query(r#"prometheus_build_info{managed_by="lgtm-proxy"}"#, false)
            .await
            .is_empty()
            && !target
                .query(r#"up{managed_by="lgtm-proxy"}"#, false)
                .await
                .is_empty()
    })
    .await;
    let pushed = target.query(r#"{managed_by="lgtm-proxy"}"#, false).await;
    assert_eq!(
        pushed.len(),
        2,
        "one up and one build_info series: {pushed:?}"
    );
    for s in &pushed {
        let m = &s["metric"];
        assert_eq!(m["namespace"], "webapp-team", "{m}");
        assert_eq!(m["job"], "webapp", "{m}");
        assert_eq!(m["team"], "webapp", "{m}");
        assert_eq!(m["tenant"], "webapp-team", "{m}");
    }
    // Series of another namespace, or of none, never leave the source.
    assert!(target
        .query(r#"{namespace="other-team"}"#, false)
        .await
        .is_empty());
    assert!(target
        .query(r#"{job="prometheus"}"#, false)
        .await
        .is_empty());
    assert!(target.query(r#"{job="other"}"#, false).await.is_empty());

    // Two sources returned the same series: collected once.
    let collected = json(&proxy, "/collected-metrics").await;
    let job = &collected["jobs"][0];
    assert_eq!(job["namespace"], "webapp-team");
    assert_eq!(job["count"], 2, "{job}");
    let targets = json(&proxy, "/debug/targets").await;
    let sources = targets["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    assert_eq!(sources[0]["healthy"], true, "{targets}");
    assert_eq!(sources[1]["healthy"], true, "{targets}");
    assert_eq!(sources[2]["healthy"], false, "{targets}");
    assert!(sources[2]["error"].as_str().is_some_and(|e| !e.is_empty()));

    let m = metrics(&proxy).await;
    let delivered = sample(
        &m,
        &[
            "remote_write_requests_total{",
            r#"status="204""#,
            r#"target_type="prometheus""#,
            r#"tenant="webapp-team""#,
        ],
    );
    assert!(delivered.is_some_and(|n| n >= 1.0), "{m}");
    assert!(sample(
        &m,
        &[
            "remote_write_metrics_collected_total{",
            r#"tenant="webapp-team""#
        ]
    )
    .is_some_and(|n| n >= 2.0));
    assert_eq!(sample(&m, &["remote_write_source_up{", &closed]), Some(0.0));
    assert!(sample(
        &m,
        &[
            "remote_write_last_success_timestamp_seconds{",
            r#"name="webapp-metrics""#
        ]
    )
    .is_some_and(|t| t > 1.7e9));

    let health = json(&proxy, "/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["remote_write_jobs"]["webapp-team/webapp-metrics"]["state"], "ok",
        "{health}"
    );
    assert!(
        proxy.wait_for_log(r#""targets_used":2"#, Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
    assert!(proxy
        .logs()
        .contains("Collected metrics for remote write job"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushgateway_receives_the_group_with_exported_job_labels() {
    let src = source();
    let pg = Pushgateway::start();
    let toml = one_job(
        &[&src.url()],
        "batch",
        &format!(
            "type = \"pushgateway\"\nurl = {:?}\njob_name = \"rw-test\"",
            pg.url()
        ),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let url = format!("{}/metrics", pg.url());
    let find_line = || async {
        let (_, _, body) = get(&url).await;
        String::from_utf8_lossy(&body)
            .lines()
            .find(|l| l.starts_with("up{") && l.contains(r#"job="rw-test""#))
            .map(str::to_string)
    };
    eventually("the pushgateway holds the group", || async {
        find_line().await.is_some()
    })
    .await;
    let line = find_line().await.unwrap();
    // The grouping key is job + namespace; the series' own job moved aside.
    for needle in [
        r#"namespace="webapp-team""#,
        r#"exported_job="webapp""#,
        r#"managed_by="lgtm-proxy""#,
        "exported_instance=",
    ] {
        assert!(line.contains(needle), "{needle} missing in {line}");
    }
    let m = metrics(&proxy).await;
    assert!(
        sample(
            &m,
            &[
                "remote_write_requests_total{",
                r#"status="200""#,
                "pushgateway"
            ]
        )
        .is_some(),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_target_with_basic_auth_and_a_wrong_password() {
    // The source wants basic auth too (its self-scrapes fail, but `up`
    // exists, with value 0).
    let src = Prometheus::start(&[], SOURCE_YML, true);
    let target = receiver(true);
    let dir = tempfile::tempdir().unwrap();
    let src_pw = dir.path().join("source");
    std::fs::write(&src_pw, format!("{}\n", src.token)).unwrap();
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, format!("{}\n", target.token)).unwrap();
    std::fs::write(&bad, "not-the-password\n").unwrap();
    let job = |name: &str, tenant: &str, file: &std::path::Path| {
        format!(
            r#"
[[remote_write.jobs]]
name = "{name}"
namespace = "webapp-team"
source = "{tenant}"
metrics = ["up"]
interval = "1s"
[remote_write.jobs.target]
type = "remote_write"
url = "{url}/api/v1/write"
basic_auth = {{ username = "{USER}", password_file = "{file}" }}
headers = {{ X-Tenant = "webapp-team" }}
"#,
            url = target.url(),
            file = file.display(),
        )
    };
    let toml = format!(
        "[remote_write]\nsources = [\"{}\"]\nsource_basic_auth = {{ username = \"{USER}\", password_file = \"{}\" }}\n{}{}",
        src.url(),
        src_pw.display(),
        job("good", "good-tenant", &good),
        job("bad", "bad-tenant", &bad)
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("the authenticated job's series arrive", || async {
        !target
            .query(r#"up{managed_by="lgtm-proxy"}"#, true)
            .await
            .is_empty()
    })
    .await;
    eventually("the wrong password is counted as 401s", || async {
        let m = metrics(&proxy).await;
        sample(
            &m,
            &[
                "remote_write_requests_total{",
                r#"status="401""#,
                r#"tenant="bad-tenant""#,
            ],
        )
        .is_some_and(|n| n >= 2.0)
    })
    .await;
    let m = metrics(&proxy).await;
    assert!(
        sample(
            &m,
            &[
                "remote_write_samples_dropped_total{",
                "rejected",
                "bad-tenant"
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    let health = json(&proxy, "/health").await;
    assert_eq!(
        health["remote_write_jobs"]["webapp-team/bad"]["state"], "failing",
        "{health}"
    );
    assert!(health["remote_write_jobs"]["webapp-team/bad"]["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("401")));
    assert_eq!(
        health["remote_write_jobs"]["webapp-team/good"]["state"], "ok",
        "{health}"
    );
    // Every remote_write_* name the alerts and the dashboard use exists,
    // and the exposition passes promtool.
    let root = env!("CARGO_MANIFEST_DIR");
    let deploy = [
        "/deploy/kustomize/base/prometheusrule.yaml",
        "/deploy/dashboards/lgtm-proxy.json",
    ]
    .map(|f| std::fs::read_to_string(format!("{root}{f}")).unwrap())
    .concat();
    let mut names: Vec<&str> = deploy
        .match_indices("remote_write_")
        .map(|(i, _)| {
            let rest = &deploy[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(
            m.lines().any(|l| l.starts_with(name)),
            "{name} is used in deploy/ but not exposed"
        );
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), m.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Neither password is ever logged or exported.
    assert!(!proxy.logs().contains(&target.token));
    assert!(!proxy.logs().contains("not-the-password"));
    assert!(!proxy.logs().contains(&src.token));
    assert!(!m.contains(&target.token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_for_two_intervals_is_retried_and_recovers() {
    let src = source();
    let port = free_port();
    let toml = one_job(
        &[&src.url()],
        "flaky",
        &format!("type = \"prometheus\"\nurl = \"http://127.0.0.1:{port}\""),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("failed pushes are counted with status error", || async {
        let m = metrics(&proxy).await;
        sample(&m, &["remote_write_requests_total{", r#"status="error""#]).is_some_and(|n| n >= 2.0)
    })
    .await;
    // Two intervals down, then the target comes up on that port.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let target = Prometheus::start_on(Some(port), RECEIVER, "global: {}\n", false);
    eventually("queued and new series arrive after recovery", || async {
        !target
            .query(r#"up{managed_by="lgtm-proxy"}"#, false)
            .await
            .is_empty()
    })
    .await;
    let m = metrics(&proxy).await;
    assert!(sample(&m, &["remote_write_requests_total{", r#"status="error""#]).is_some());
    assert!(
        sample(&m, &["remote_write_requests_total{", r#"status="204""#]).is_some(),
        "{m}"
    );
    let health = json(&proxy, "/health").await;
    assert_eq!(
        health["remote_write_jobs"]["webapp-team/flaky"]["state"], "ok",
        "{health}"
    );
    assert!(health["remote_write_jobs"]["webapp-team/flaky"]["queued"].as_u64() == Some(0));
    // The samples collected while the target was down went out too: the
    // target holds more than the samples since it started.
    let points = target
        .query(
            r#"count_over_time(up{managed_by="lgtm-proxy"}[10m])"#,
            false,
        )
        .await;
    let n: f64 = points[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 3.0, "only {n} samples arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_cloud_target_uses_the_tenant_upstream_and_debug_needs_admin() {
    let src = source();
    let stack = answering(200).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let stack_token = write("stack", "stack-token-1234\n");
    let admin = write("admin", "admin-client-token\n");
    let reader = write("reader", "read-client-token\n");
    let toml = format!(
        r#"
[tenants.stage]
[tenants.stage.upstreams.prometheus]
url = "{stack}"
user = "111"
token_file = "{stack_token}"
tenant = "stage-org"
[[tenants.stage.clients]]
name = "ops"
token_file = "{admin}"
[[tenants.stage.clients]]
name = "grafana"
token_file = "{reader}"
access = ["read"]

[remote_write]
sources = ["{src}"]
[[remote_write.jobs]]
name = "to-cloud"
namespace = "webapp-team"
source = "stage"
metrics = ["up"]
interval = "1s"
[remote_write.jobs.target]
type = "grafana_cloud"
"#,
        stack = stack.url(),
        src = src.url(),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("the stack receives a push", || async {
        !stack.requests().is_empty()
    })
    .await;
    let r = stack.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/prom/push");
    let h = |k: &str| r.headers.get(k).map(|v| v.to_str().unwrap().to_string());
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("111:stack-token-1234");
    assert_eq!(h("authorization"), Some(format!("Basic {basic}")));
    assert_eq!(h("x-scope-orgid").as_deref(), Some("stage-org"));
    assert_eq!(h("content-encoding").as_deref(), Some("snappy"));
    assert_eq!(h("content-type").as_deref(), Some("application/x-protobuf"));
    assert_eq!(
        h("x-prometheus-remote-write-version").as_deref(),
        Some("0.1.0")
    );
    let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
    let wr: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
    assert!(!wr.timeseries.is_empty());
    for ts in &wr.timeseries {
        let get = |n: &str| {
            ts.labels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.value.as_str())
        };
        assert_eq!(get("namespace"), Some("webapp-team"));
        assert_eq!(get("managed_by"), Some("lgtm-proxy"));
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "labels must be sorted");
    }
    let m = metrics(&proxy).await;
    assert!(
        sample(
            &m,
            &[
                "remote_write_requests_total{",
                "grafana_cloud",
                r#"tenant="stage""#,
                r#"status="200""#
            ]
        )
        .is_some(),
        "{m}"
    );

    // Debug endpoints show every tenant's series: admin only.
    for path in ["/collected-metrics", "/debug/targets"] {
        let (status, _, _) = get(&proxy.url(path)).await;
        assert_eq!(status, 401, "{path} without credentials");
        let ask = |token: &'static str| {
            let req = http::Request::get(proxy.url(path))
                .header("authorization", format!("Bearer {token}"))
                .body(empty())
                .unwrap();
            send(req)
        };
        let (status, _, body) = ask("read-client-token").await;
        assert_eq!(status, 403, "{path} for a read-only client");
        assert!(String::from_utf8_lossy(&body).contains("admin"));
        let (status, _, _) = ask("admin-client-token").await;
        assert_eq!(status, 200, "{path} for an admin client");
    }
    assert!(!proxy.logs().contains("stack-token-1234"));
}

fn check_config(toml: &str) -> std::process::Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    proxy::command(&[])
        .arg("--config")
        .arg(file.path())
        .arg("check-config")
        .output()
        .unwrap()
}

fn fixtures(dir: &str) -> String {
    format!(
        "{}/tests/fixtures/metricaccess/{dir}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_seeds_manifests_validate_as_written() {
    let out = check_config(&format!(
        "[remote_write]\nsources = [\"http://prometheus-infra.monitoring:9090\"]\nmanifests_dir = \"{}\"\n",
        fixtures("seed000")
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("http://prometheus.webapp-team.svc.cluster.local:9090/api/v1/write"),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{namespace="webapp-team"}"#),
        "{text}"
    );

    let secrets = tempfile::tempdir().unwrap();
    // Secrets are namespaced: <secrets_dir>/<manifest namespace>/<name>/<key>.
    std::fs::create_dir_all(secrets.path().join("my-team/prometheus-auth")).unwrap();
    std::fs::write(
        secrets.path().join("my-team/prometheus-auth/password"),
        "s3cr3t-pw\n",
    )
    .unwrap();
    let out = check_config(&format!(
        "[remote_write]\nsources = [\"http://p:9090\"]\nmanifests_dir = \"{}\"\nsecrets_dir = \"{}\"\ncluster_domain = \"k8s.example\"\n",
        fixtures("seed001"),
        secrets.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        // Seed 001's placement of the target block beside `target`.
        "http://prometheus.webapp-team.svc.k8s.example:9090/api/v1/write",
        r#"{job="webapp",namespace="webapp-team"}"#,
        // extraLabels sets managed_by itself: kept.
        r#"managed_by = "multi-tenant-proxy""#,
        "http://pushgateway.my-team.svc.k8s.example:9091/metrics/job/remote-write-metrics/namespace/my-team",
        "https://external-prometheus.example.com/api/v1/write",
        r#"user = "monitoring-user""#,
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    assert!(!text.contains("s3cr3t-pw"));
}

#[test]
fn invalid_toml_jobs_fail_the_config_naming_the_field() {
    let out = check_config(
        r#"
[remote_write]
sources = ["http://p:9090"]
[[remote_write.jobs]]
name = "x"
namespace = "webapp-team"
metrics = ['up{namespace="kube-system"}', "sum(up)"]
interval = "soon"
extra_labels = { "bad-name" = "v" }
[remote_write.jobs.target]
type = "carrier-pigeon"
"#,
    );
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "remote_write.jobs[0].metrics[0]: selects namespace \"kube-system\"",
        "remote_write.jobs[0].metrics[1]: must be a metric name or a series selector",
        "remote_write.jobs[0].interval:",
        "remote_write.jobs[0].extra_labels:",
        "remote_write.jobs[0].target.type:",
    ] {
        assert!(err.contains(needle), "{needle} missing in\n{err}");
    }
}

const VALID: &str = r#"apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: good, namespace: webapp-team}
spec:
  metrics: ["up"]
  remoteWrite:
    interval: 1s
    target: {type: prometheus, prometheus: {serviceName: prometheus, servicePort: 9090}}
"#;

#[test]
fn an_invalid_manifest_is_named_and_skipped_the_others_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-good.yaml"), VALID).unwrap();
    std::fs::write(
        dir.path().join("b-foreign.yaml"),
        VALID
            .replace("name: good", "name: foreign")
            .replace(r#"["up"]"#, r#"['up{namespace="kube-system"}']"#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c-typo.yml"),
        VALID
            .replace("name: good", "name: typo")
            .replace("serviceName", "servicename"),
    )
    .unwrap();
    std::fs::write(dir.path().join("d-broken.yaml"), "apiVersion: [unclosed\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let toml = format!(
        "watch_interval = \"200ms\"\n[remote_write]\nsources = [\"{}\"]\nmanifests_dir = \"{}\"\n",
        closed_port_url(),
        dir.path().display()
    );
    let out = check_config(&toml);
    assert_eq!(out.status.code(), Some(78));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains(r#"name = "good""#), "{stdout}");
    assert!(!stdout.contains(r#"name = "foreign""#), "{stdout}");
    assert!(
        stderr.contains("b-foreign.yaml: spec.metrics[0]: selects namespace \"kube-system\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("c-typo.yml") && stderr.contains("servicename"),
        "{stderr}"
    );
    assert!(stderr.contains("d-broken.yaml"), "{stderr}");
    assert!(!stderr.contains("notes.txt"), "{stderr}");

    // serve runs the valid job, names the skipped ones, and follows the
    // directory: a new manifest starts a job, a removed one stops it.
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    assert!(proxy.wait_for_log("webapp-team/good", Duration::from_secs(5)));
    assert!(proxy.logs().contains("MetricAccess manifest skipped"));
    assert!(proxy.logs().contains("b-foreign.yaml"));
    std::fs::write(
        dir.path().join("e-new.yaml"),
        VALID.replace("name: good", "name: newcomer"),
    )
    .unwrap();
    assert!(
        proxy.wait_for_log("webapp-team/newcomer", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    std::fs::remove_file(dir.path().join("a-good.yaml")).unwrap();
    assert!(
        proxy.wait_for_log("remote-write job removed", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    let health = std::process::Command::new("curl")
        .args(["-s", &proxy.url("/health")])
        .output()
        .unwrap();
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert!(
        health["remote_write_jobs"]
            .get("webapp-team/newcomer")
            .is_some(),
        "{health}"
    );
    assert!(
        health["remote_write_jobs"]
            .get("webapp-team/good")
            .is_none(),
        "{health}"
    );
}

/// A source that accepts connections and never answers costs the jobs no
/// cycles: health is checked in the background and queries time out at
/// half the interval, so the healthy source's series still go out on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_source_does_not_stall_the_job() {
    let src = source();
    let hanging = RecordingUpstream::start(Behavior::Hang).await;
    let target = answering(204).await;
    // The hanging source comes first: it must not hold up the other.
    let toml = one_job(
        &[&hanging.url(), &src.url()],
        "steady",
        &format!(
            "type = \"remote_write\"\nurl = \"{}/api/v1/write\"",
            target.url()
        ),
    );
    let (_proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    eventually("a first push", || async { !target.requests().is_empty() }).await;
    let first = target.requests().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pushes = target.requests().len() - first;
    // One push per 1 s interval; a stall of 5 s per health check or
    // query would allow about five.
    assert!(pushes >= 7, "only {pushes} pushes in 10 s");
    eprintln!("{pushes} pushes in 10 s");
}
