use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::*;
use crate::config::{load_from, Secret};
use crate::proxy::target::basic_auth;
use crate::proxy::ClientSet;
use crate::telemetry::Metrics;
use crate::tenant::X_SCOPE_ORGID;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn hop_by_hop_headers_go_in_any_case_with_those_connection_names() {
    let mut h = map(&[
        ("Connection", "Keep-Alive, X-Custom-Hop"),
        ("connection", "x-other-hop"),
        ("KEEP-ALIVE", "timeout=5"),
        ("X-Custom-Hop", "1"),
        ("x-other-hop", "2"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic cHJveHk6cHc="),
        ("Proxy-Authenticate", "Basic"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Trailer", "grpc-status"),
        ("TE", "gzip"),
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ]);
    strip_hop_by_hop(&mut h);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        [
            "content-encoding",
            "content-type",
            "x-prometheus-remote-write-version"
        ]
    );
}

#[test]
fn keep_alive_responses_and_messages_without_hop_headers() {
    // nginx's usual answer: only Connection and Keep-Alive go.
    let mut h = map(&[
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Content-Type", "application/json"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(
        h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["content-type"]
    );
    // Nothing to strip: nothing changes.
    let mut h = map(&[("content-type", "text/plain"), ("x-custom", "1")]);
    let before = h.clone();
    strip_hop_by_hop(&mut h);
    assert_eq!(h, before);
}

#[test]
fn te_trailers_survives_alone() {
    let mut h = map(&[("te", "gzip, Trailers;q=1")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.get("te").unwrap(), "trailers");
    let mut h = map(&[("te", "deflate")]);
    strip_hop_by_hop(&mut h);
    assert!(h.get("te").is_none());
}

pub(crate) fn target() -> Arc<Target> {
    let cfg = load_from(
        None,
        [
            (
                "LGTM_LOKI_URL".to_string(),
                "https://logs.example.net".to_string(),
            ),
            ("LGTM_LOKI_USER".to_string(), "1329819".to_string()),
            ("LGTM_TOKEN".to_string(), "glc_token_value".to_string()),
        ],
    )
    .unwrap();
    let up = &cfg.upstreams["loki"];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let client = ClientSet::new().client_for(up);
    Arc::new(Target::new(up, "default", client, Arc::new(Metrics::new())))
}

#[test]
fn request_gets_injected_credentials_and_loses_the_clients() {
    let t = target();
    let mut h = map(&[
        ("authorization", "Bearer client-token"),
        ("X-Scope-OrgID", "someone-else"),
        ("x-scope-orgid", "and-again"),
        ("host", "lgtm-proxy:8085"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("expect", "100-continue"),
        ("content-encoding", "gzip"),
    ]);
    let id = HeaderValue::from_static("req-1");
    let peer = ClientAddr::new(
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000).into(),
        false,
    );
    prepare_request(&mut h, &t, &peer, &id);
    assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
    assert_eq!(
        h[AUTHORIZATION],
        basic_auth("1329819", &Secret::new("glc_token_value"))
    );
    assert_eq!(
        h.get_all(&X_SCOPE_ORGID).iter().collect::<Vec<_>>(),
        ["1329819"]
    );
    assert!(h.get("host").is_none());
    assert!(h.get("expect").is_none());
    assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"], "req-1");
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h[AUTHORIZATION].is_sensitive());
}

#[test]
fn forwarded_proto_says_how_the_client_reached_the_proxy() {
    let t = target();
    let id = HeaderValue::from_static("req-1");
    let addr = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000).into();
    let mut h = map(&[]);
    prepare_request(&mut h, &t, &ClientAddr::new(addr, true), &id);
    assert_eq!(h["x-forwarded-proto"], "https");
    // The contract appends: an earlier hop's entry is kept, this hop's
    // last, so the last entry is always how the client reached this proxy.
    let mut h = map(&[("x-forwarded-proto", "https")]);
    prepare_request(&mut h, &t, &ClientAddr::new(addr, false), &id);
    assert_eq!(h["x-forwarded-proto"], "https, http");
}

#[test]
fn values_unique_to_each_request_are_never_indexed() {
    let t = target();
    let peer = ClientAddr::new(
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000).into(),
        false,
    );
    let mut ours = HeaderValue::from_static("req-1");
    ours.set_sensitive(true);
    // The proxy's own id goes out as it was made.
    let mut h = map(&[("user-agent", "alloy/1.4")]);
    prepare_request(&mut h, &t, &peer, &ours);
    assert_eq!(h["x-request-id"], "req-1");
    assert!(h["x-request-id"].is_sensitive());
    // A client's own id and trace context are kept and marked too; the
    // values that repeat from request to request are not.
    let mut h = map(&[
        ("x-request-id", "client-42"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("user-agent", "alloy/1.4"),
    ]);
    prepare_request(&mut h, &t, &peer, &ours);
    assert_eq!(h["x-request-id"], "client-42");
    assert!(h["x-request-id"].is_sensitive());
    assert!(h["traceparent"].is_sensitive());
    assert!(!h["user-agent"].is_sensitive());
    assert!(!h["x-forwarded-for"].is_sensitive());
}
