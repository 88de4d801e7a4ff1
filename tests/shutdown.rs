//! SIGTERM with an upload in flight: /ready turns 503 at once while the
//! listener still serves for `shutdown_delay`, the upload completes, and
//! the process exits 0.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Request;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_an_inflight_upload_and_exits_zero() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let mut proxy = ProxyProc::start(&[
        ("LGTM_LOKI_URL", &up.url()),
        ("LGTM_LOKI_USER", "1"),
        ("LGTM_TOKEN", "t"),
        ("LGTM_SHUTDOWN_DELAY", "1s"),
        ("LGTM_SHUTDOWN_GRACE", "30s"),
    ]);
    // A slow upload: 64 chunks of 64 KiB, 40 ms apart (about 2.5 s).
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let req = Request::post(proxy.url("/loki/api/v1/push"))
        .body(http_body_util::BodyExt::boxed_unsync(ChannelBody(rx)))
        .unwrap();
    let upload = tokio::spawn(async move { send(req).await });
    let feeder = tokio::spawn(async move {
        for _ in 0..64 {
            tx.send(bytes::Bytes::from(vec![7u8; 64 * 1024]))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.signal("TERM");

    // /ready flips at once; /health stays 200 during the delay.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (s, _, _) = get(&proxy.url("/ready")).await;
        if s == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (s, _, _) = get(&proxy.url("/health")).await;
    assert_eq!(s, 200);

    feeder.await.unwrap();
    let (status, _, _) = upload.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        up.last().body_len,
        64 * 64 * 1024,
        "the in-flight upload was cut"
    );
    let exit = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("did not exit after draining");
    assert!(exit.success(), "exit status {exit:?}");
    // The log reader may still be on the last lines when the exit is seen.
    assert!(
        proxy.wait_for_log("all connections closed", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_with_nothing_in_flight_exits_zero_quickly() {
    let mut proxy = ProxyProc::start(&[]);
    proxy.signal("INT");
    let exit = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    assert!(exit.success());
}

/// Signals sent the moment the proxy says it serves are handled, never the
/// default action: SIGHUP reloads (the process lives on), SIGTERM drains
/// and exits 0. The window this guards (between "serving" and the first
/// poll of the handlers) is narrow: the loop repeats it with both cores
/// kept busy, which is how it showed up in CI.
#[tokio::test(flavor = "multi_thread")]
async fn signals_right_after_start_are_handled() {
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let burners: Vec<_> = (0..2)
        .map(|_| {
            let busy = busy.clone();
            std::thread::spawn(move || {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for _ in 0..30 {
        let mut proxy = ProxyProc::start(&[]);
        proxy.signal("HUP");
        assert_eq!(
            get(&proxy.url("/health")).await.0,
            200,
            "SIGHUP killed the process"
        );
        proxy.signal("TERM");
        let exit = proxy
            .wait_exit(Duration::from_secs(10))
            .expect("did not exit");
        assert!(exit.success(), "SIGTERM was not drained: {exit:?}");
    }
    for _ in 0..30 {
        let mut proxy = ProxyProc::start(&[]);
        proxy.signal("TERM");
        let exit = proxy
            .wait_exit(Duration::from_secs(10))
            .expect("did not exit");
        assert!(exit.success(), "a SIGTERM right after start: {exit:?}");
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
}
