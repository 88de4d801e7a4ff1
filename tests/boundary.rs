//! The class boundary against every spelling an attacker would try, with a
//! real Prometheus 2.x (remote-write receiver and admin API on, basic auth)
//! and a real Alertmanager 0.25 behind the proxy. For each spelling of a
//! write or admin endpoint, a client outside that class is refused (400 for
//! spellings that have no canonical form, 403 for the rest), and a query
//! straight to the upstream shows that nothing arrived. Positive controls:
//! the class that may do it does it, through the same spellings.

mod common;

use std::collections::BTreeMap;

use common::alertmanager::Alertmanager;
use common::prometheus::{Prometheus, USER};
use common::spelling::{raw_request, refused, same_meaning, spellings, token_file};
use common::*;
use lgtm_proxy::remote_write::encode::{remote_write_body, REMOTE_WRITE_HEADERS};
use lgtm_proxy::remote_write::series::Series;

fn series(run: &str, spelling: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let labels: BTreeMap<String, String> = [
        ("__name__", "boundary_probe"),
        ("run", run),
        ("spelling", &spelling.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    remote_write_body(&[Series {
        labels,
        value: 1.0,
        timestamp_ms: now,
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_lets_a_client_act_outside_its_classes() {
    let prom = Prometheus::start(
        &[
            "--web.enable-remote-write-receiver",
            "--web.enable-admin-api",
            "--web.route-prefix=/api/prom",
        ],
        "global:\n  scrape_interval: 1h\n",
        true,
    );
    let am = Alertmanager::start("am-pass");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[tenants.stage.upstreams.prometheus]
url = "{prom}"
user = "{USER}"
token = "{prom_token}"
[tenants.stage.upstreams.alertmanager]
url = "{am}"
user = "{USER}"
token = "am-pass"
[[tenants.stage.clients]]
name = "reader"
token_file = "{reader}"
access = ["read"]
[[tenants.stage.clients]]
name = "writer"
token_file = "{writer}"
access = ["write"]
"#,
        prom = prom.url(),
        prom_token = prom.token,
        am = am.url(),
        reader = token_file(dir.path(), "reader"),
        writer = token_file(dir.path(), "writer"),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let run = format!("r{}", std::process::id());
    let rw: Vec<(&str, &str)> = REMOTE_WRITE_HEADERS.to_vec();
    // The probe series stored so far, asked of Prometheus directly.
    let probe_query = format!("boundary_probe{{run=\"{run}\"}}");
    let probes = || prom.query_under("/api/prom", &probe_query, true);

    // 1. The reader never writes, in any spelling of remote write.
    let write_path = "/prometheus/api/v1/write";
    let write_spellings = spellings(write_path);
    assert!(write_spellings.len() > 30, "{write_spellings:?}");
    for (i, p) in write_spellings.iter().enumerate() {
        let (s, resp) = raw_request(&proxy, "POST", p, "reader-secret", &rw, series(&run, i)).await;
        assert!(refused(s), "reader POST {p}: {resp}");
        if s == 403 {
            assert!(
                resp.contains("may not write") || resp.contains("may not admin"),
                "{p}: {resp}"
            );
        }
    }
    // Nothing the reader sent was stored.
    let stored = probes().await;
    assert!(stored.is_empty(), "the reader wrote: {stored:?}");

    // Positive control: the writer writes, through every spelling that
    // means the same path (the proxy forwards its canonical form).
    let mut written = 0;
    for (i, p) in write_spellings.iter().enumerate() {
        let (s, resp) = raw_request(&proxy, "POST", p, "writer-secret", &rw, series(&run, i)).await;
        if same_meaning(write_path, p) && !p.ends_with('/') {
            assert_eq!(s, 204, "writer POST {p}: {resp}");
            written += 1;
        } else {
            // Trailing slash: Prometheus' router redirects it; the rest:
            // 400 (no canonical form) or 403 (upper-case: not the endpoint,
            // so admin).
            assert!(
                matches!(s, 204 | 307 | 308 | 400 | 403 | 404),
                "writer POST {p}: {resp}"
            );
        }
    }
    let stored = probes().await;
    assert!(
        stored.len() >= written && written >= 5,
        "{written} writes, stored {stored:?}"
    );

    // 2. Admin endpoints refuse the reader and the writer in every spelling:
    //    delete_series would wipe what was just written.
    let delete = "/prometheus/api/v1/admin/tsdb/delete_series";
    for p in spellings(delete) {
        let target = format!("{p}?match%5B%5D=boundary_probe");
        for who in ["reader-secret", "writer-secret"] {
            let (s, resp) = raw_request(&proxy, "POST", &target, who, &[], Vec::new()).await;
            assert!(refused(s), "{who} POST {target}: {resp}");
        }
    }
    let still = probes().await;
    assert_eq!(still.len(), stored.len(), "series were deleted");

    // 3. Alertmanager: alerts and silences on both API versions, POST and
    //    DELETE, in every spelling: the reader is refused.
    let silence = r#"{"matchers":[{"name":"alertname","value":"Paging","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"x"}"#;
    let alert = r#"[{"labels":{"alertname":"Forged"}}]"#;
    let json = [("content-type", "application/json")];
    for path in [
        "/alertmanager/api/v2/silences",
        "/alertmanager/api/v1/silences",
        "/alertmanager/api/v2/alerts",
        "/alertmanager/api/v1/alerts",
    ] {
        let body = if path.ends_with("silences") {
            silence
        } else {
            alert
        };
        for p in spellings(path) {
            let (s, resp) =
                raw_request(&proxy, "POST", &p, "reader-secret", &json, body.into()).await;
            assert!(refused(s), "reader POST {p}: {resp}");
        }
    }
    assert_eq!(am.get_json("/api/v2/silences").await, serde_json::json!([]));
    assert_eq!(am.get_json("/api/v2/alerts").await, serde_json::json!([]));

    // Positive control: the writer silences (v2 with an encoded letter,
    // v1 through a doubled slash); the reader can't expire either silence.
    let (s, resp) = raw_request(
        &proxy,
        "POST",
        "/alertmanager/api/v2/%73ilences",
        "writer-secret",
        &json,
        silence.into(),
    )
    .await;
    assert_eq!(s, 200, "{resp}");
    let (s, resp) = raw_request(
        &proxy,
        "POST",
        "/alertmanager//api/v1/silences",
        "writer-secret",
        &json,
        silence.into(),
    )
    .await;
    assert_eq!(s, 200, "{resp}");
    let silences = am.get_json("/api/v2/silences").await;
    let ids: Vec<String> = silences
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{silences}");
    for id in &ids {
        for base in [
            "/alertmanager/api/v2/silence",
            "/alertmanager/api/v1/silence",
        ] {
            for p in spellings(&format!("{base}/{id}")) {
                let (s, resp) =
                    raw_request(&proxy, "DELETE", &p, "reader-secret", &[], Vec::new()).await;
                assert!(refused(s), "reader DELETE {p}: {resp}");
            }
        }
    }
    let active = am.get_json("/api/v2/silences").await;
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"]["state"] == "active"),
        "a silence was expired: {active}"
    );

    // Reads still work for the reader, GET and POST queries alike.
    let (s, resp) = raw_request(
        &proxy,
        "GET",
        "/prometheus/api/v1/query?query=up",
        "reader-secret",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 200, "{resp}");
    let (s, resp) = raw_request(
        &proxy,
        "POST",
        "/prometheus/api/v1/%71uery",
        "reader-secret",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"query=up".to_vec(),
    )
    .await;
    assert_eq!(s, 200, "{resp}");
    // An endpoint the table does not name: admin, even for POST.
    let (s, resp) = raw_request(
        &proxy,
        "POST",
        "/alertmanager/-/reload",
        "writer-secret",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 403, "{resp}");
    assert!(resp.contains("may not admin"), "{resp}");
}
