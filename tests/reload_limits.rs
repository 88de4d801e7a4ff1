//! Limiter state outlives a reload: requests in flight keep their slots
//! (global and per tenant) and a client's rate bucket stays as drained as
//! it was, so reloads, even a burst of them while slots are held, never
//! admit more than `max_in_flight`. A reload that changes a cap moves it
//! for the requests after it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Request;

const STAGE_TOKEN: &str = "stage-token";
const RATED_TOKEN: &str = "rated-token";

/// The caps and the rated client's rate; `extra` is appended (a comment
/// makes a reload that changes nothing).
struct Caps {
    global: usize,
    tenant: usize,
    rate: f64,
}

const START: Caps = Caps {
    global: 3,
    tenant: 2,
    rate: 0.05,
};

fn config(up: &str, dir: &std::path::Path, caps: Caps, extra: &str) -> String {
    let file = |name: &str, content: &str| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    };
    format!(
        r#"
max_in_flight = {global}
[tenants.stage]
max_in_flight = {tenant}
[tenants.stage.upstreams.prometheus]
url = "{up}"
user = "1"
token = "up-stage"
[[tenants.stage.clients]]
name = "grafana"
token_file = "{stage}"
[[tenants.stage.clients]]
name = "rated"
token_file = "{rated}"
rate = {rate}
{extra}
"#,
        global = caps.global,
        tenant = caps.tenant,
        rate = caps.rate,
        stage = file("stage", STAGE_TOKEN),
        rated = file("rated", RATED_TOKEN),
    )
}

fn query(proxy: &ProxyProc, token: &str) -> Request<TestBody> {
    Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .unwrap()
}

fn push(proxy: &ProxyProc, token: &str) -> Request<TestBody> {
    Request::post(proxy.url("/api/prom/push"))
        .header("authorization", format!("Bearer {token}"))
        .body(full(&b"x"[..]))
        .unwrap()
}

/// The status of a request that must be answered at once (a request the
/// proxy admitted would hang on the upstream instead).
async fn refused(proxy: &ProxyProc, req: Request<TestBody>) -> u16 {
    proxy
        .within("a refusal", async { send(req).await.0.as_u16() })
        .await
}

/// Rewrite the config file and SIGHUP; wait until the reload counted.
async fn reload(proxy: &ProxyProc, path: &std::path::Path, toml: &str) {
    let before = proxy.successful_reloads().await;
    std::fs::write(path, toml).unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.successful_reloads().await <= before {
        assert!(
            Instant::now() < deadline,
            "the reload never succeeded: {}",
            proxy.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_requests(up: &RecordingUpstream, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.requests().len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} requests never arrived upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_keep_in_flight_slots_and_rate_buckets() {
    // Queries hang upstream (holding their slots), pushes are answered.
    let up = RecordingUpstream::start(Behavior::HangReads).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&up.url(), dir.path(), START, "");
    let (proxy, file) = ProxyProc::start_with_file(&toml, &[]);

    // The rated client's write bucket: one push, then empty for 20 s.
    let (s, _, _) = send(push(&proxy, RATED_TOKEN)).await;
    assert_eq!(s, 200);
    assert_eq!(refused(&proxy, push(&proxy, RATED_TOKEN)).await, 429);

    // Stage's two read slots held by hanging queries.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(send(query(&proxy, STAGE_TOKEN))))
        .collect();
    wait_for_requests(&up, 3).await;
    assert_eq!(refused(&proxy, query(&proxy, STAGE_TOKEN)).await, 429);

    // Reloads that change nothing about the tenant, several while the
    // slots are held: every attempt between them is still refused, and the
    // rated client's bucket is still empty.
    for i in 0..5 {
        reload(
            &proxy,
            file.path(),
            &config(&up.url(), dir.path(), START, &format!("# reload {i}")),
        )
        .await;
        assert_eq!(
            refused(&proxy, query(&proxy, STAGE_TOKEN)).await,
            429,
            "after reload {i}"
        );
        assert_eq!(
            refused(&proxy, push(&proxy, RATED_TOKEN)).await,
            429,
            "after reload {i}"
        );
    }
    assert_eq!(
        up.requests().len(),
        3,
        "a reload let a request past the caps"
    );

    // A lower cap: still refused while the two are held.
    reload(
        &proxy,
        file.path(),
        &config(&up.url(), dir.path(), Caps { tenant: 1, ..START }, ""),
    )
    .await;
    assert_eq!(refused(&proxy, query(&proxy, STAGE_TOKEN)).await, 429);
    // A higher one: room for exactly one more, counted with the held two;
    // with three held, the global cap (3) answers 503.
    reload(
        &proxy,
        file.path(),
        &config(&up.url(), dir.path(), Caps { tenant: 4, ..START }, ""),
    )
    .await;
    let third = tokio::spawn(send(query(&proxy, STAGE_TOKEN)));
    wait_for_requests(&up, 4).await;
    assert_eq!(refused(&proxy, query(&proxy, STAGE_TOKEN)).await, 503);
    // The global cap carried too: a reload keeps the three counted.
    reload(
        &proxy,
        file.path(),
        &config(
            &up.url(),
            dir.path(),
            Caps { tenant: 4, ..START },
            "# again",
        ),
    )
    .await;
    assert_eq!(refused(&proxy, push(&proxy, STAGE_TOKEN)).await, 503);
    assert_eq!(up.requests().len(), 4);

    // A changed rate gives the client new buckets (once a slot is free).
    for t in held.into_iter().chain([third]) {
        t.abort();
    }
    // Slots free again once the held requests are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _, _) = send(push(&proxy, STAGE_TOKEN)).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused(&proxy, push(&proxy, RATED_TOKEN)).await, 429);
    let faster = Caps {
        tenant: 4,
        rate: 0.1,
        ..START
    };
    reload(
        &proxy,
        file.path(),
        &config(&up.url(), dir.path(), faster, ""),
    )
    .await;
    let (s, _, _) = send(push(&proxy, RATED_TOKEN)).await;
    assert_eq!(s, 200, "a new rate starts with a full bucket");
}

/// A reload that changes a start-only key says so, naming the key, for as
/// long as the file differs from what the process started with (compared
/// with the start, not the last reload), and stops once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_only_change_is_named_on_every_reload_until_it_is_undone() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let base = config(&up.url(), dir.path(), START, "");
    let (proxy, file) = ProxyProc::start_with_file(&base, &[]);
    const WARNING: &str = "take effect at the next start only";
    // The log arrives by its own pipe: wait for the count, in order.
    let warnings_reach = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.logs().matches(WARNING).count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy.logs().matches(WARNING).count()
    };
    // Top-level keys go before the first table.
    let changed = format!("shutdown_grace = \"7s\"\n{base}");
    reload(&proxy, file.path(), &changed).await;
    assert_eq!(warnings_reach(1), 1, "{}", proxy.logs());
    assert!(proxy.logs().contains("shutdown_grace"));
    // The same value again: still not what runs, still named.
    reload(&proxy, file.path(), &format!("{changed}# again\n")).await;
    assert_eq!(warnings_reach(2), 2, "{}", proxy.logs());
    // Back to the start value: nothing to name (the caps still moved).
    // A last change after it proves, by the count, that none came between.
    let back = config(&up.url(), dir.path(), Caps { tenant: 4, ..START }, "");
    reload(&proxy, file.path(), &back).await;
    reload(&proxy, file.path(), &format!("log = \"debug\"\n{back}")).await;
    assert_eq!(warnings_reach(3), 3, "{}", proxy.logs());
    assert!(
        proxy.logs().contains("\"keys\":\"log\""),
        "{}",
        proxy.logs()
    );
}
