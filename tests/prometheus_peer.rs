//! A real Prometheus 2.x as the upstream, requiring basic auth: remote
//! writes and queries through the proxy succeed with the injected
//! credentials, and the same requests without them get 401 (so these tests
//! can fail). Needs Debian's `prometheus` (scripts/test.sh installs it).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::prometheus::{Prometheus, USER};
use common::*;
use http::Request;

#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// A snappy-compressed (block format) remote-write 1.0 body with one sample.
fn write_request(run: &str, value: f64) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let label = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                label("__name__", "lgtm_proxy_e2e"),
                label("job", "e2e"),
                label("run", run),
            ],
            samples: vec![Sample {
                value,
                timestamp: now_ms,
            }],
        }],
    };
    let raw = prost::Message::encode_to_vec(&req);
    Bytes::from(snap::raw::Encoder::new().compress_vec(&raw).unwrap())
}

fn remote_write(url: String, body: Bytes) -> Request<TestBody> {
    Request::post(url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(full(body))
        .unwrap()
}

fn receiver() -> Prometheus {
    Prometheus::start(
        &[
            "--web.enable-remote-write-receiver",
            "--web.route-prefix=/api/prom",
        ],
        "global:\n  scrape_interval: 1h\n",
        true,
    )
}

fn proxy_for(prom: &Prometheus, token: &str) -> ProxyProc {
    ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &prom.url()),
        ("LGTM_PROMETHEUS_USER", USER),
        ("LGTM_PROMETHEUS_TOKEN", token),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_lands_and_query_reads_it_back_through_the_proxy() {
    let prom = receiver();
    let proxy = proxy_for(&prom, &prom.token);
    let run = format!("r{}", std::process::id());

    // Both built-in prometheus routes reach /api/prom/api/v1/write.
    let (s, _, b) = send(remote_write(
        proxy.url("/prometheus/api/v1/write"),
        write_request(&run, 42.0),
    ))
    .await;
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&b));
    let (s, _, _) = send(remote_write(
        proxy.url("/api/prom/api/v1/write"),
        write_request(&format!("{run}b"), 7.0),
    ))
    .await;
    assert_eq!(s, 204);

    let query = format!("/prometheus/api/v1/query?query=lgtm_proxy_e2e%7Brun%3D%22{run}%22%7D");
    let (s, _, body) = get(&proxy.url(&query)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "success");
    let result = &v["data"]["result"][0];
    assert_eq!(result["metric"]["run"], run.as_str());
    assert_eq!(result["value"][1], "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_injected_credentials_prometheus_says_401() {
    let prom = receiver();
    // Straight to Prometheus, no credentials.
    let (s, _, _) = send(remote_write(
        format!("{}/api/prom/api/v1/write", prom.url()),
        write_request("x", 1.0),
    ))
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = get(&format!("{}/api/prom/api/v1/query?query=up", prom.url())).await;
    assert_eq!(s, 401);
    // Through a proxy holding the wrong token: 401 passes back unchanged.
    let proxy = proxy_for(&prom, "not-the-token");
    let (s, _, _) = send(remote_write(
        proxy.url("/prometheus/api/v1/write"),
        write_request("x", 1.0),
    ))
    .await;
    assert_eq!(s, 401);
    // A client's own Authorization never reaches the upstream: even the
    // right credentials sent by the client do not help a wrong-token proxy.
    let req = Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
        .header("authorization", prom.basic_auth())
        .body(empty())
        .unwrap();
    let (s, _, _) = send(req).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_agent_remote_writes_through_the_proxy() {
    let prom = receiver();
    let proxy = proxy_for(&prom, &prom.token);
    // An agent-mode Prometheus scraping the proxy's own /metrics and
    // remote-writing with no credentials of its own.
    let agent_yml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lgtm-proxy\n    static_configs:\n      - targets: ['{addr}']\nremote_write:\n  - url: http://{addr}/prometheus/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
        addr = proxy.addr
    );
    let _agent = Prometheus::start(&["--enable-feature=agent"], &agent_yml, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, _, body) = get(&proxy.url(
            "/prometheus/api/v1/query?query=lgtm_proxy_build_info%7Bjob%3D%22lgtm-proxy%22%7D",
        ))
        .await;
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent's samples never arrived: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, _, m) = get(&proxy.url("/metrics")).await;
    let m = String::from_utf8_lossy(&m);
    assert!(m.contains(r#"lgtm_proxy_requests_total{method="POST",status="204",tenant="default",upstream="prometheus"}"#), "{m}");
}
