//! `--role` / `LGTM_ROLE`: one config, three processes. `proxy` serves the
//! routes and never starts a remote-write job or rules sync; `jobs` runs
//! them and answers 404 to every proxied route; `all` does both.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mimir::Mimir;
use common::*;
use http::Request;

/// A Prometheus source answering every instant query with one `up` series
/// of the job's namespace (and 200 to `/-/healthy`).
async fn source() -> RecordingUpstream {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","namespace":"webapp-team","pod":"a"},"value":[1700000000,"1"]}]}}"#;
    RecordingUpstream::start(Behavior::Fixed {
        status: 200,
        headers: vec![("content-type", "application/json")],
        body: bytes::Bytes::from_static(body.as_bytes()),
    })
    .await
}

/// A job every second from `source` to the Pushgateway `target`, rules
/// sync every second into `ruler`, and the prometheus route to `ruler`.
fn config(source: &str, target: &str, ruler: &str, rules: &Path) -> String {
    format!(
        r#"
[upstreams.prometheus]
url = "{ruler}"
user = "111"
token = "t"
timeout = "5s"
# A catch-all route: in the jobs role even this one answers 404.
[[routes]]
prefix = "/"
upstream = "prometheus"
[remote_write]
sources = ["{source}"]
[[remote_write.jobs]]
name = "webapp"
namespace = "webapp-team"
metrics = ["up"]
interval = "1s"
[remote_write.jobs.target]
type = "pushgateway"
url = "{target}"
job_name = "webapp"
[rules_sync]
dir = "{dir}"
interval = "1s"
"#,
        dir = rules.display()
    )
}

fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platform.yml"),
        "groups:\n  - name: platform\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
    )
    .unwrap();
    dir
}

struct Peers {
    source: RecordingUpstream,
    target: RecordingUpstream,
    ruler: Mimir,
    _rules: tempfile::TempDir,
    toml: String,
}

async fn peers() -> Peers {
    let (source, target, ruler, rules) = (
        source().await,
        RecordingUpstream::start(Behavior::Ok).await,
        Mimir::start().await,
        rules_dir(),
    );
    let toml = config(&source.url(), &target.url(), &ruler.url(), rules.path());
    Peers {
        source,
        target,
        ruler,
        _rules: rules,
        toml,
    }
}

fn query(proxy: &ProxyProc) -> Request<TestBody> {
    Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
        .body(empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_role_serves_routes_and_never_runs_jobs_or_rules_sync() {
    let p = peers().await;
    let (proxy, _f) = ProxyProc::start_with_file(&p.toml, &[("LGTM_ROLE", "proxy")]);
    // The route is served: the query reaches the upstream (the in-process
    // ruler answers it 404 itself; the proxy's "no route" never says so).
    send(query(&proxy)).await;
    assert!(proxy.wait_for_log("\"role\":\"proxy\"", Duration::from_secs(5)));
    // Three job and sync intervals, then nothing may have happened beside
    // the one proxied query.
    let until = Instant::now() + Duration::from_millis(3200);
    while Instant::now() < until {
        assert!(p.source.requests().is_empty(), "a source was queried");
        assert!(p.target.requests().is_empty(), "a job pushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = p.ruler.calls();
    assert_eq!(
        calls.len(),
        1,
        "only the proxied query: {:?}",
        calls.iter().map(|c| &c.path).collect::<Vec<_>>()
    );
    assert!(
        calls[0].path.ends_with("/api/v1/query"),
        "{}",
        calls[0].path
    );
    let (_, _, body) = get(&proxy.url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&body);
    assert!(
        !metrics.contains("lgtm_proxy_remote_write_collected_total{"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_role_runs_jobs_and_rules_sync_and_answers_404_to_routes() {
    let p = peers().await;
    let mut cmd = common::proxy::command(&[
        ("LGTM_LISTEN", "127.0.0.1:0"),
        ("LGTM_SHUTDOWN_DELAY", "0s"),
    ]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &p.toml).unwrap();
    cmd.arg("--config")
        .arg(file.path())
        .arg("serve")
        .arg("--role")
        .arg("jobs");
    let proxy = ProxyProc::spawn(cmd);
    eventually("the job pushes to its Pushgateway", || async {
        p.target
            .requests()
            .iter()
            .any(|r| r.method == "PUT" || r.method == "POST")
    })
    .await;
    eventually("rules sync writes the ruler", || async {
        p.ruler
            .calls()
            .iter()
            .any(|c| c.method == "POST" && c.path.contains("/config/v1/rules/"))
    })
    .await;
    let before = p.ruler.calls().len();
    for path in [
        "/prometheus/api/v1/query?query=up",
        "/api/prom/push",
        "/loki/api/v1/push",
        "/otlp/v1/traces",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "//prometheus/api/v1/query",
        "/anything/the/catch-all/route/names",
    ] {
        let req = Request::post(proxy.url(path)).body(full("x")).unwrap();
        let (status, _, body) = send(req).await;
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 404, "{v}");
    }
    assert!(
        p.ruler.calls()[before..]
            .iter()
            .all(|c| !c.path.contains("/api/v1/query")),
        "a proxied request reached the upstream"
    );
    // The own endpoints stay.
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/collected-metrics",
        "/debug/targets",
    ] {
        let (status, _, _) = get(&proxy.url(path)).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn an_unknown_role_is_refused_naming_the_choices() {
    let out = common::proxy::command(&[("LGTM_ROLE", "worker")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worker") && err.contains("all, proxy or jobs"),
        "{err}"
    );
}
