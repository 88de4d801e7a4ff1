//! gRPC through the proxy with the real OpenTelemetry Python clients
//! (PyPI: opentelemetry-exporter-otlp-proto-grpc; scripts/test.sh installs
//! them): the built-in TraceService route reaches the `tempo_grpc` upstream
//! over h2c with the injected Basic header, and grpc-status trailers pass
//! back, errors as errors.

mod common;

use std::process::Command;

use base64::Engine as _;
use common::*;

fn python(mode: &str, addr: std::net::SocketAddr) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/otlp_grpc.py");
    let out = Command::new("python3")
        .args([script, mode, &addr.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python OTLP client failed (run scripts/test.sh, which installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn setup(behavior: Behavior) -> (ProxyProc, RecordingUpstream) {
    let up = RecordingUpstream::start(behavior).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_TEMPO_GRPC_URL", &up.url()),
        ("LGTM_TEMPO_GRPC_USER", "1324130"),
        ("LGTM_TOKEN", "tempo-token"),
    ]);
    (proxy, up)
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_export_reaches_tempo_over_h2c_with_credentials() {
    let (proxy, up) = setup(Behavior::Grpc {
        status: 0,
        message: "",
    })
    .await;
    let addr = proxy.addr;
    let result = tokio::task::spawn_blocking(move || python("export", addr))
        .await
        .unwrap();
    assert_eq!(result, "SUCCESS");
    let rec = up.last();
    assert_eq!(
        rec.target,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(
        rec.version,
        http::Version::HTTP_2,
        "gRPC to an http:// upstream goes over h2c"
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("1324130:tempo-token")
    );
    assert_eq!(rec.headers["authorization"], expected.as_str());
    assert_eq!(rec.headers["te"], "trailers");
    assert!(rec.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc"));
    assert!(rec.body_len > 5, "the export carried a span");
    assert!(wait_for_metric(&proxy.url(""), r#"lgtm_proxy_requests_total{method="POST",status="200",tenant="default",upstream="tempo_grpc"} 1"#).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_error_status_and_message_pass_through() {
    let (proxy, up) = setup(Behavior::Grpc {
        status: 7,
        message: "tenant not allowed",
    })
    .await;
    let addr = proxy.addr;
    let result = tokio::task::spawn_blocking(move || python("raw", addr))
        .await
        .unwrap();
    assert_eq!(result, "PERMISSION_DENIED tenant not allowed");
    // The client's own Authorization was replaced.
    assert!(up.last().headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_ok_over_the_raw_stub() {
    let (proxy, _up) = setup(Behavior::Grpc {
        status: 0,
        message: "",
    })
    .await;
    let addr = proxy.addr;
    assert_eq!(
        tokio::task::spawn_blocking(move || python("raw", addr))
            .await
            .unwrap(),
        "OK"
    );
}
