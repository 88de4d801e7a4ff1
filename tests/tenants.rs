//! Multi-tenant behaviour against a recording upstream: tenant resolution
//! by client credentials, 401/403 bodies, access classes, isolation under
//! concurrent load, per-tenant and per-client limits, and hot rotation of
//! secrets through a Kubernetes-style symlink swap.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::volume::SecretVolume;
use common::*;
use http::Request;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic(user: &str, token: &str) -> String {
    format!("Basic {}", b64(&format!("{user}:{token}")))
}

struct Secrets {
    dir: tempfile::TempDir,
}

impl Secrets {
    fn new() -> Self {
        Secrets {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{content}\n")).unwrap();
        p.to_str().unwrap().to_string()
    }
}

/// stage and prod: distinct users, upstream tokens and client tokens.
/// Clients: stage has `alloy` (write), `kubecost` (read) and a tokens file;
/// prod has `prod-all` (every class).
fn two_tenants(up: &RecordingUpstream, s: &Secrets, extra: &str) -> String {
    format!(
        r#"
{extra}
[upstreams.prometheus]
url = "{url}"
user = "0"
token = "top-level-token"

[upstreams.loki]
url = "{url}"
user = "0"
token = "top-level-token"

[tenants.stage]
client_tokens_file = "{stage_list}"
[tenants.stage.upstreams.prometheus]
user = "111"
token_file = "{stage_up}"
[tenants.stage.upstreams.loki]
user = "112"
token_file = "{stage_up}"
[[tenants.stage.clients]]
name = "alloy"
token_file = "{alloy}"
access = ["write"]
[[tenants.stage.clients]]
name = "kubecost"
token_file = "{kubecost}"
access = ["read"]

[tenants.prod]
[tenants.prod.upstreams.prometheus]
user = "222"
token_file = "{prod_up}"
tenant = "prod-org"
[[tenants.prod.clients]]
name = "prod-all"
token_file = "{prod_all}"
"#,
        url = up.url(),
        stage_list = s.file(
            "stage-clients",
            "# stage client tokens\n\nstage-list-token\n"
        ),
        stage_up = s.file("stage-up", "stage-upstream-token"),
        prod_up = s.file("prod-up", "prod-upstream-token"),
        alloy = s.file("alloy", "alloy-client-token"),
        kubecost = s.file("kubecost", "kubecost-client-token"),
        prod_all = s.file("prod-all", "prod-client-token"),
    )
}

fn req(method: &str, url: String, auth: Option<&str>, org: Option<&str>) -> Request<TestBody> {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    if let Some(o) = org {
        b = b.header("x-scope-orgid", o);
    }
    b.body(if method == "POST" {
        full(&b"payload"[..])
    } else {
        empty()
    })
    .unwrap()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn client_tokens_select_their_tenant_and_never_reach_the_upstream() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let s = Secrets::new();
    let (proxy, _f) = ProxyProc::start_with_file(&two_tenants(&up, &s, ""), &[]);

    // prod, Bearer.
    let (st, _, _) = send(req(
        "GET",
        proxy.url("/prometheus/api/v1/query?query=up"),
        Some(&bearer("prod-client-token")),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    let r = up.last();
    assert_eq!(
        r.headers["authorization"],
        basic("222", "prod-upstream-token")
    );
    assert_eq!(r.headers["x-scope-orgid"], "prod-org");

    // stage via Basic with any user and the token as password; OrgID =
    // the tenant's own user, never the top level's.
    let (st, _, _) = send(req(
        "GET",
        proxy.url("/prometheus/api/v1/query"),
        Some(&basic("whoever", "kubecost-client-token")),
        Some("stage"),
    ))
    .await;
    assert_eq!(st, 200);
    let r = up.last();
    assert_eq!(
        r.headers["authorization"],
        basic("111", "stage-upstream-token")
    );
    assert_eq!(r.headers["x-scope-orgid"], "111");
    for h in up.requests().iter().map(|r| &r.headers) {
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            !auth.contains("client-token") && auth != basic("whoever", "kubecost-client-token")
        );
        assert_eq!(h.get_all("x-scope-orgid").iter().count(), 1);
    }

    // A token from client_tokens_file (all classes) selects stage too.
    let (st, _, _) = send(req(
        "POST",
        proxy.url("/api/prom/push"),
        Some(&bearer("stage-list-token")),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        up.last().headers["authorization"],
        basic("111", "stage-upstream-token")
    );

    // prod has no loki: 404 naming tenant and upstream, not the default's.
    let (st, _, b) = send(req(
        "GET",
        proxy.url("/loki/api/v1/labels"),
        Some(&bearer("prod-client-token")),
        None,
    ))
    .await;
    assert_eq!(st, 404);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["tenant"].as_str(), v["upstream"].as_str()),
        (Some("prod"), Some("loki"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_missing_and_mismatched_credentials_are_401_and_403() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let s = Secrets::new();
    let (proxy, _f) = ProxyProc::start_with_file(&two_tenants(&up, &s, ""), &[]);
    let url = proxy.url("/prometheus/api/v1/query");

    for auth in [
        None,
        Some(bearer("wrong-token-xyz")),
        Some(basic("u", "wrong-token-xyz")),
    ] {
        let res = client()
            .request(req("GET", url.clone(), auth.as_deref(), None))
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{auth:?}");
        let challenges: Vec<_> = res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            challenges,
            [
                r#"Bearer realm="lgtm-proxy""#,
                r#"Basic realm="lgtm-proxy""#
            ]
        );
        let (_, _, b) = read(res).await;
        let body = String::from_utf8_lossy(&b);
        assert!(
            !body.contains("wrong-token-xyz"),
            "credential echoed: {body}"
        );
        assert!(serde_json::from_slice::<serde_json::Value>(&b).unwrap()["error"].is_string());
    }
    // An OrgID alone does not authenticate when auth is required.
    let (st, _, _) = send(req("GET", url.clone(), None, Some("prod"))).await;
    assert_eq!(st, 401);
    // stage's token asking for prod: 403.
    let (st, _, b) = send(req(
        "GET",
        url.clone(),
        Some(&bearer("kubecost-client-token")),
        Some("prod"),
    ))
    .await;
    assert_eq!(st, 403);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["reason"], "tenant_mismatch");
    assert!(up.requests().is_empty(), "nothing reached the upstream");
    // /health, /ready and /metrics never ask for credentials.
    for p in ["/health", "/ready", "/metrics"] {
        assert_eq!(get(&proxy.url(p)).await.0, 200, "{p}");
    }
    let (_, _, m) = get(&proxy.url("/metrics")).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains(r#"lgtm_proxy_auth_failures_total{reason="unknown_credentials"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"lgtm_proxy_auth_failures_total{reason="missing_credentials"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"lgtm_proxy_auth_failures_total{reason="tenant_mismatch"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_client_tokens_orgid_selects_a_tenant_or_403() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        "[upstreams.loki]\nurl = \"{u}\"\nuser = \"0\"\ntoken = \"t0\"\n[tenants.team-a.upstreams.loki]\nuser = \"7\"\ntoken = \"t7\"\n",
        u = up.url()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let (st, _, _) = send(req("GET", proxy.url("/loki/x"), None, Some("team-a"))).await;
    assert_eq!(st, 200);
    assert_eq!(up.last().headers["authorization"], basic("7", "t7"));
    assert_eq!(up.last().headers["x-scope-orgid"], "7");
    let (st, _, _) = send(req("GET", proxy.url("/loki/x"), None, Some("team-zz"))).await;
    assert_eq!(st, 403);
    let (st, _, _) = send(req("GET", proxy.url("/loki/x"), None, None)).await;
    assert_eq!(st, 200);
    assert_eq!(
        up.last().headers["authorization"],
        basic("0", "t0"),
        "no OrgID: the default tenant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_classes_split_readers_writers_and_rule_admins() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let s = Secrets::new();
    let extra = "[[routes]]\nprefix = \"/admin-only\"\nupstream = \"prometheus\"\nrewrite = \"/api/prom\"\nclass = \"admin\"\n";
    let (proxy, _f) = ProxyProc::start_with_file(&two_tenants(&up, &s, extra), &[]);
    let reader = bearer("kubecost-client-token");
    let writer = bearer("alloy-client-token");
    let cases: &[(&str, &str, &str, u16)] = &[
        (&reader, "GET", "/prometheus/api/v1/query?query=up", 200),
        (&reader, "POST", "/prometheus/api/v1/query_range", 200),
        (&reader, "POST", "/api/prom/push", 403),
        (&reader, "POST", "/prometheus/push", 403),
        (&reader, "POST", "/prometheus/config/v1/rules/ns", 403),
        (&reader, "GET", "/admin-only/api/v1/labels", 403),
        (&writer, "POST", "/api/prom/push", 200),
        (&writer, "POST", "/loki/api/v1/push", 200),
        (&writer, "GET", "/prometheus/api/v1/query?query=up", 403),
        (&writer, "POST", "/prometheus/config/v1/rules/ns", 403),
        (&writer, "DELETE", "/loki/api/v1/rules/ns/group", 403),
    ];
    for (auth, method, path, want) in cases {
        let (st, _, b) = send(req(method, proxy.url(path), Some(auth), None)).await;
        assert_eq!(
            st.as_u16(),
            *want,
            "{auth} {method} {path}: {}",
            String::from_utf8_lossy(&b)
        );
        if *want == 403 {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(
                ["read", "write", "admin"].contains(&v["class"].as_str().unwrap()),
                "{v}"
            );
        }
    }
    // prod's client has every class, admin included.
    let (st, _, _) = send(req(
        "POST",
        proxy.url("/prometheus/config/v1/rules/ns"),
        Some(&bearer("prod-client-token")),
        None,
    ))
    .await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_isolation_under_concurrent_load() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let s = Secrets::new();
    let (proxy, _f) = ProxyProc::start_with_file(&two_tenants(&up, &s, ""), &[]);
    const N: usize = 20_000;
    const WORKERS: usize = 32;
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let base = proxy.url("");
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (next, failures, base) = (next.clone(), failures.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut rng = 0x2545_f491_4f6c_dd1du64 ^ (w as u64 * 0x9e37_79b9);
            while next.fetch_add(1, Ordering::Relaxed) < N {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let (token, tag, method, path) = match rng % 4 {
                    0 => (
                        "prod-client-token",
                        "prod",
                        "GET",
                        "/prometheus/api/v1/query?query=up",
                    ),
                    1 => ("prod-client-token", "prod", "POST", "/api/prom/push"),
                    2 => (
                        "kubecost-client-token",
                        "stage",
                        "GET",
                        "/prometheus/api/v1/query?query=up",
                    ),
                    _ => ("alloy-client-token", "stage", "POST", "/loki/api/v1/push"),
                };
                let r = Request::builder()
                    .method(method)
                    .uri(format!("{base}{path}"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("x-test-tenant", tag)
                    .body(if method == "POST" {
                        full(&b"x"[..])
                    } else {
                        empty()
                    })
                    .unwrap();
                match c.request(r).await {
                    Ok(res) if res.status() == 200 => {
                        let _ = read(res).await;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let seen = up.requests();
    assert_eq!(seen.len(), N);
    let (prod, stage, stage_loki) = (
        basic("222", "prod-upstream-token"),
        basic("111", "stage-upstream-token"),
        "112",
    );
    let mut crossovers = 0;
    for r in &seen {
        let tag = r.headers["x-test-tenant"].to_str().unwrap();
        let auth = r.headers["authorization"].to_str().unwrap();
        let org = r.headers["x-scope-orgid"].to_str().unwrap();
        let ok = match tag {
            "prod" => auth == prod && org == "prod-org",
            _ if r.target.starts_with("/loki") => {
                auth == basic("112", "stage-upstream-token") && org == stage_loki
            }
            _ => auth == stage && org == "111",
        };
        if !ok {
            crossovers += 1;
        }
    }
    assert_eq!(
        crossovers, 0,
        "requests carried another tenant's credentials"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_slots_and_client_rates_answer_429_without_touching_others() {
    let hanging = RecordingUpstream::start(Behavior::HangReads).await;
    let fine = RecordingUpstream::start(Behavior::Ok).await;
    let s = Secrets::new();
    let toml = format!(
        r#"
[tenants.stage]
max_in_flight = 1
[tenants.stage.upstreams.prometheus]
url = "{h}"
user = "1"
token = "a"
[[tenants.stage.clients]]
name = "s"
token_file = "{st}"

[tenants.prod.upstreams.prometheus]
url = "{f}"
user = "2"
token = "b"
[[tenants.prod.clients]]
name = "p"
token_file = "{pt}"
rate = 2
"#,
        h = hanging.url(),
        f = fine.url(),
        st = s.file("s", "stage-tok"),
        pt = s.file("p", "prod-tok"),
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    // One stage query hangs in its read slot.
    let url = proxy.url("/prometheus/api/v1/query?query=up");
    let stuck = tokio::spawn(send(req(
        "GET",
        url.clone(),
        Some(&bearer("stage-tok")),
        None,
    )));
    let deadline = Instant::now() + Duration::from_secs(5);
    while hanging.requests().is_empty() {
        assert!(Instant::now() < deadline, "the first query never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = client()
        .request(req("GET", url.clone(), Some(&bearer("stage-tok")), None))
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    // Writes have their own slots: ingest is not starved by the query.
    let (st, _, _) = send(req(
        "POST",
        proxy.url("/api/prom/push"),
        Some(&bearer("stage-tok")),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    // prod is unaffected by stage's limit, but has its own rate of 2/s.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            send(req("GET", url.clone(), Some(&bearer("prod-tok")), None))
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..2], [200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_rotation_under_load_loses_nothing_and_an_emptied_upstream_token_keeps_the_last_good_one(
) {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut volume = SecretVolume::new(dir.path(), "token", "token-v1\n");
    let token_path = dir.path().join("token");
    let toml = format!(
        "watch_interval = \"200ms\"\n[upstreams.prometheus]\nurl = \"{}\"\nuser = \"9\"\ntoken_file = \"{}\"\n",
        up.url(),
        token_path.display()
    );
    let (proxy, _f) = ProxyProc::start_with_file(&toml, &[]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, failures, sent, url) = (
            stop.clone(),
            failures.clone(),
            sent.clone(),
            proxy.url("/api/prom/push"),
        );
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let r = Request::post(url.as_str())
                    .body(full(&b"sample"[..]))
                    .unwrap();
                match c.request(r).await {
                    Ok(res) if res.status() == 200 => {
                        let _ = read(res).await;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let wait_for = |want: String| {
        let up = &up;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if up
                    .requests()
                    .last()
                    .is_some_and(|r| r.headers["authorization"] == want.as_str())
                {
                    return Instant::now();
                }
                assert!(Instant::now() < deadline, "the upstream never saw {want}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(basic("9", "token-v1")).await;
    let swapped = Instant::now();
    volume.update("token", "token-v2\n");
    let seen = wait_for(basic("9", "token-v2")).await;
    let took = seen - swapped;
    assert!(
        took < Duration::from_secs(3),
        "rotation took {took:?} with a 200ms watch interval"
    );

    // An upstream token file that becomes empty fails static: the reload
    // goes through, keeps the last good token (v2) and says so.
    volume.update("token", "");
    assert!(
        proxy.wait_for_log("the last good token is kept", Duration::from_secs(10)),
        "the kept token was not reported: {}",
        proxy.logs()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(up.last().headers["authorization"], basic("9", "token-v2"));
    assert!(
        sent.load(Ordering::Relaxed) > 50,
        "the load loop barely ran"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    let (_, _, m) = get(&proxy.url("/metrics")).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains(r#"lgtm_proxy_config_reloads_total{result="success"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"lgtm_proxy_credentials_age_seconds{tenant="default",upstream="prometheus"}"#),
        "{m}"
    );
    assert!(!m.contains("token-v"), "a token leaked into /metrics");
    assert!(
        !proxy.logs().contains("token-v"),
        "a token leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_file() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        "watch_interval = \"1h\"\n[upstreams.loki]\nurl = \"{}\"\nbasic_auth = false\n",
        up.url()
    );
    let (proxy, file) = ProxyProc::start_with_file(&toml, &[]);
    assert_eq!(get(&proxy.url("/team/x")).await.0, 404);
    std::fs::write(
        file.path(),
        format!("{toml}[[routes]]\nprefix = \"/team\"\nupstream = \"loki\"\nrewrite = \"/loki\"\n"),
    )
    .unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&proxy.url("/team/x")).await.0 != 200 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.last().target, "/loki/x");
    let (_, _, b) = get(&proxy.url("/ready?verbose")).await;
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["tenants"]["default"], serde_json::json!(["loki"]));
}
