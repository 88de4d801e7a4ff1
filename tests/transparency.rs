//! Every built-in route against a recording upstream: exact upstream path
//! and query, injected credentials, stripped client credentials and
//! hop-by-hop headers, bodies byte-identical both ways.

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::Request;

const TOKEN: &str = "glc_eyJvIjoiMTIzIn0_transparency";

fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{TOKEN}"))
    )
}

/// One upstream per signal, each with its own user, behind one proxy.
async fn setup() -> (ProxyProc, Vec<(&'static str, RecordingUpstream)>) {
    let mut ups = Vec::new();
    for name in ["PROMETHEUS", "LOKI", "TEMPO", "OTLP"] {
        ups.push((name, RecordingUpstream::start(Behavior::Ok).await));
    }
    let mut env: Vec<(String, String)> = vec![("LGTM_TOKEN".into(), TOKEN.into())];
    for (i, (name, up)) in ups.iter().enumerate() {
        env.push((format!("LGTM_{name}_URL"), up.url()));
        env.push((format!("LGTM_{name}_USER"), format!("{}", 1000 + i)));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (ProxyProc::start(&env), ups)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_builtin_route_reaches_its_upstream_with_exact_path_and_headers() {
    let (proxy, ups) = setup().await;
    let query = "query=sum(rate(http_requests_total%7Bjob%3D%22a%22%7D%5B5m%5D))&time=1%2B2&x=a+b&empty=&raw=%zz";
    let cases = [
        ("/api/prom/push", 0, "/api/prom/push"),
        ("/api/prom/api/v1/query", 0, "/api/prom/api/v1/query"),
        ("/prometheus/api/v1/query", 0, "/api/prom/api/v1/query"),
        ("/prometheus", 0, "/api/prom"),
        ("/loki/api/v1/query_range", 1, "/loki/api/v1/query_range"),
        ("/tempo/api/search", 2, "/tempo/api/search"),
        ("/otlp/v1/traces", 3, "/otlp/v1/traces"),
    ];
    for (path, idx, upstream_path) in cases {
        let req = Request::get(proxy.url(&format!("{path}?{query}")))
            .header("authorization", "Bearer client-credential")
            .header("x-scope-orgid", "spoofed-tenant")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "must-not-pass")
            .header("keep-alive", "timeout=5")
            .header("proxy-authorization", "Basic Zm9vOmJhcg==")
            .header("te", "trailers, deflate")
            .header("x-custom", "passes")
            .header("accept-encoding", "gzip")
            .body(empty())
            .unwrap();
        let (status, _, _) = send(req).await;
        assert_eq!(status, 200, "{path}");
        let (name, up) = &ups[idx];
        let rec = up.last();
        assert_eq!(
            rec.target,
            format!("{upstream_path}?{query}"),
            "{path} via {name}"
        );
        let h = &rec.headers;
        let user = format!("{}", 1000 + idx);
        assert_eq!(
            h.get_all("authorization").iter().collect::<Vec<_>>(),
            [basic(&user).as_str()]
        );
        assert_eq!(
            h.get_all("x-scope-orgid").iter().collect::<Vec<_>>(),
            [user.as_str()]
        );
        assert_eq!(h["host"], up.addr.to_string());
        for gone in ["x-hop", "keep-alive", "proxy-authorization", "connection"] {
            assert!(h.get(gone).is_none(), "{gone} reached the upstream");
        }
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-custom"], "passes");
        assert_eq!(h["accept-encoding"], "gzip");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(h.get("x-request-id").is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_pass_byte_identical_chunked_and_sized_with_encodings_untouched() {
    let up = RecordingUpstream::start(Behavior::Echo).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.url()),
        ("LGTM_LOKI_USER", "7"),
        ("LGTM_TOKEN", TOKEN),
    ]);
    let data = Bytes::from(pattern(3 * 1024 * 1024 + 17));

    // Sized body: Content-Length reaches the upstream unchanged.
    let req = Request::post(proxy.url("/loki/api/v1/push"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(full(data.clone()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 200);
    let rec = up.last();
    assert_eq!(rec.headers["content-length"], data.len().to_string());
    assert!(rec.headers.get("transfer-encoding").is_none());
    assert_eq!(rec.headers["content-encoding"], "snappy");
    assert_eq!(rec.headers["content-type"], "application/x-protobuf");
    assert_eq!(rec.headers["x-prometheus-remote-write-version"], "0.1.0");
    assert!(rec.body == data, "request body changed on the way up");
    assert!(body == data, "response body changed on the way down");
    assert_eq!(headers["content-type"], "application/x-protobuf");

    // Chunked body.
    let req = Request::post(proxy.url("/loki/api/v1/push"))
        .header("content-encoding", "gzip")
        .body(PatternBody::chunked_from(data.clone(), 4093).boxed_unsync())
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 200);
    let rec = up.last();
    assert!(rec.headers.get("content-length").is_none());
    assert_eq!(rec.headers["content-encoding"], "gzip");
    assert!(rec.body == data && body == data);
}

#[tokio::test(flavor = "multi_thread")]
async fn response_headers_pass_except_hop_by_hop() {
    let up = RecordingUpstream::start(Behavior::Fixed {
        status: 207,
        headers: vec![
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
            ("x-upstream", "kept"),
            ("connection", "x-upstream-hop"),
            ("x-upstream-hop", "dropped"),
            ("proxy-authenticate", "Basic"),
        ],
        body: Bytes::from_static(b"\x1f\x8b\x08\x00not-really-gzip"),
    })
    .await;
    let proxy = ProxyProc::start(&[
        ("LGTM_TEMPO_URL", &up.url()),
        ("LGTM_TEMPO_USER", "7"),
        ("LGTM_TOKEN", TOKEN),
    ]);
    let (status, h, body) = get(&proxy.url("/tempo/api/traces/abc")).await;
    assert_eq!(status, 207);
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-upstream"], "kept");
    assert!(h.get("x-upstream-hop").is_none());
    assert!(h.get("proxy-authenticate").is_none());
    assert_eq!(&body[..], b"\x1f\x8b\x08\x00not-really-gzip");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_base_path_file_routes_and_empty_tenant() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        r#"
[upstreams.mimir]
url = "{}/mimir/"
basic_auth = false
tenant = "team-a"

[upstreams.prometheus]
url = "{}/base"
user = "2668285"
tenant = ""

[[routes]]
prefix = "/team/metrics"
upstream = "mimir"
rewrite = "/prometheus"
"#,
        up.url(),
        up.url()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[("LGTM_TOKEN", TOKEN)]);
    let (s, _, _) = get(&proxy.url("/team/metrics/api/v1/labels?match[]=up")).await;
    assert_eq!(s, 200);
    let rec = up.last();
    assert_eq!(rec.target, "/mimir/prometheus/api/v1/labels?match[]=up");
    assert!(
        rec.headers.get("authorization").is_none(),
        "basic_auth = false sends none"
    );
    assert_eq!(rec.headers["x-scope-orgid"], "team-a");

    let (s, _, _) = get(&proxy.url("/prometheus/api/v1/query?query=up")).await;
    assert_eq!(s, 200);
    let rec = up.last();
    assert_eq!(rec.target, "/base/api/prom/api/v1/query?query=up");
    assert_eq!(rec.headers["authorization"], basic("2668285"));
    assert!(
        rec.headers.get("x-scope-orgid").is_none(),
        "tenant = \"\" sends none"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_clients_are_served_and_re_versioned_to_http1_upstreams() {
    let up = RecordingUpstream::start(Behavior::Echo).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_OTLP_URL", &up.url()),
        ("LGTM_OTLP_USER", "9"),
        ("LGTM_TOKEN", TOKEN),
    ]);
    let req = Request::post(proxy.url("/otlp/v1/metrics?a=%41"))
        .header("content-type", "application/x-protobuf")
        .body(full(&b"otlp-payload"[..]))
        .unwrap();
    let res = h2c_client().request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let (status, _, body) = read(res).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"otlp-payload");
    let rec = up.last();
    assert_eq!(rec.version, http::Version::HTTP_11);
    assert_eq!(rec.target, "/otlp/v1/metrics?a=%41");
    assert!(
        wait_for_metric(&proxy.url(""), r#"lgtm_proxy_requests_total{method="POST",status="200",tenant="default",upstream="otlp"} 1"#).await,
        "the h2 request was not counted"
    );
    assert_eq!(rec.headers["authorization"], basic("9"));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_request_id_is_kept_and_one_is_made_otherwise() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", TOKEN),
    ]);
    let req = Request::get(proxy.url("/loki/x"))
        .header("x-request-id", "abc-123")
        .body(empty())
        .unwrap();
    send(req).await;
    assert_eq!(up.last().headers["x-request-id"], "abc-123");
    assert!(proxy.wait_for_log(
        "\"request_id\":\"abc-123\"",
        std::time::Duration::from_secs(5)
    ));
    get(&proxy.url("/loki/y")).await;
    let generated = up.last().headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 20);
    assert!(proxy.wait_for_log(
        &format!("\"request_id\":\"{generated}\""),
        std::time::Duration::from_secs(5)
    ));
}
