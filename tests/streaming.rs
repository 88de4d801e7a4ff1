//! 1 GiB each way through the real binary, with the proxy's peak RSS
//! (VmHWM) under 64 MiB: a ceiling that proves nothing is buffered whole.
//! Speed lives in benches/, not here.

mod common;

use std::time::Duration;

use common::*;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;

const GIB: u64 = 1 << 30;
const RSS_CEILING_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn one_gib_up_and_one_gib_down_in_bounded_memory() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_PROMETHEUS_URL", &up.url()),
        ("LGTM_PROMETHEUS_USER", "1"),
        ("LGTM_TOKEN", "t"),
    ]);

    // Upload, chunked (no Content-Length: nothing to pre-size a buffer with).
    let req = Request::post(proxy.url("/api/prom/push"))
        .header("content-type", "application/x-protobuf")
        .body(PatternBody::chunked(GIB).boxed_unsync())
        .unwrap();
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(300), send(req))
        .await
        .expect("upload hung");
    assert_eq!(status, 200);
    assert_eq!(
        up.last().body_len,
        GIB,
        "the upstream did not get every byte"
    );
    let after_upload = proxy.peak_rss_kib();

    // Download, sized.
    up.set(Behavior::Download(GIB));
    let res = client()
        .request(
            Request::get(proxy.url("/prometheus/api/v1/export"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], GIB.to_string());
    let mut body = res.into_body();
    let mut got = 0u64;
    let mut first = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("download stalled")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            if first.len() < 4096 {
                first.extend_from_slice(&data[..data.len().min(4096 - first.len())]);
            }
            got += data.len() as u64;
        }
    }
    assert!(body.is_end_stream());
    assert_eq!(got, GIB);
    assert_eq!(first, pattern(4096), "download content changed");
    let peak = proxy.peak_rss_kib();
    eprintln!("peak RSS: {after_upload} KiB after 1 GiB up, {peak} KiB after 1 GiB down");
    assert!(
        peak < RSS_CEILING_KIB,
        "peak RSS {peak} KiB >= {RSS_CEILING_KIB} KiB: a body was buffered"
    );
}
