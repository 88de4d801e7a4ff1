//! Kubernetes ServiceAccount tokens as client credentials, end to end: a
//! local HTTPS OIDC issuer (its own CA, discovery and JWKS as the API
//! server serves them) signs tokens with test keys, and the proxy binary
//! verifies them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::jwt::{claims, hs256, jwks, tampered, unsigned, Signer, RSA_A, RSA_B};
use common::oidc::Issuer;
use common::volume::SecretVolume;
use common::*;
use http::Request;
use serde_json::json;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }
}

fn basic(user: &str, token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    format!("Basic {encoded}")
}

/// stage: `monitoring/alloy` (write) and a static-token client; teama:
/// every ServiceAccount of `team-a`.
fn config(up: &RecordingUpstream, f: &Files, keys: &str) -> String {
    format!(
        r#"
watch_interval = "200ms"
[kubernetes_auth]
audiences = ["lgtm-proxy", "other-audience"]
{keys}

[upstreams.prometheus]
url = "{url}"
user = "0"
token = "top-level-token"

[tenants.stage]
[tenants.stage.upstreams.prometheus]
user = "111"
token = "stage-upstream-token"
[[tenants.stage.clients]]
name = "alloy"
service_account = "monitoring/alloy"
access = ["write"]
[[tenants.stage.clients]]
name = "static"
token_file = "{static_token}"

[tenants.teama]
[tenants.teama.upstreams.prometheus]
user = "333"
token = "team-a-upstream-token"
[[tenants.teama.clients]]
name = "team-a"
service_account = "team-a/*"
"#,
        url = up.url(),
        static_token = f.file("static-token", "static-client-token\n"),
    )
}

fn discovery(issuer: &Issuer, f: &Files) -> String {
    format!(
        "issuer = \"{}\"\nca_file = \"{}\"\ntoken_file = \"{}\"",
        issuer.url,
        f.file("issuer-ca.pem", &issuer.ca_pem),
        f.file("pod-token", "pod-own-token\n"),
    )
}

fn push(proxy: &ProxyProc, authorization: &str) -> Request<TestBody> {
    Request::post(proxy.url("/api/prom/push"))
        .header("authorization", authorization)
        .header("content-type", "application/x-protobuf")
        .body(full(&b"payload"[..]))
        .unwrap()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_tokens_select_their_client_and_forgeries_reach_nothing() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (rsa, ec) = (Signer::rsa("rsa-a", RSA_A), Signer::ec("ec-1"));
    let issuer = Issuer::start(jwks(&[&rsa, &ec])).await;
    let f = Files::new();
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &discovery(&issuer, &f)), &[]);
    let iss = issuer.url.as_str();
    eventually("the JWKS is loaded", || async {
        let (_, _, body) = get(&proxy.url("/ready?verbose")).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["kubernetes_auth"]["keys"] == 2
    })
    .await;
    // Discovery carried the pod's own token.
    assert!(issuer
        .authorizations()
        .iter()
        .all(|a| a == "Bearer pod-own-token"));
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    let refreshed = sample(
        std::str::from_utf8(&metrics).unwrap(),
        &["lgtm_proxy_jwks_last_refresh_timestamp_seconds"],
    );
    assert!(refreshed.unwrap() > 1.7e9, "{refreshed:?}");

    // RS256 and ES256 tokens of monitoring/alloy reach stage's upstream
    // with stage's credentials; the token itself never does.
    for s in [&rsa, &ec] {
        let token = s.sign(&claims(iss, "lgtm-proxy", "monitoring", "alloy"));
        let (st, _, _) = send(push(&proxy, &bearer(&token))).await;
        assert_eq!(st, 200, "{}", s.alg());
        let r = up.last();
        assert_eq!(
            r.headers["authorization"],
            basic("111", "stage-upstream-token")
        );
        assert_eq!(r.headers["x-scope-orgid"], "111");
        assert!(!format!("{:?}", r.headers).contains(&token[..40]));
    }
    let alloy = rsa.sign(&claims(iss, "other-audience", "monitoring", "alloy"));
    // Its access classes hold: alloy may write, not read.
    let query = Request::get(proxy.url("/prometheus/api/v1/query?query=up"))
        .header("authorization", bearer(&alloy))
        .body(empty())
        .unwrap();
    assert_eq!(send(query).await.0, 403);
    // Its X-Scope-OrgID may name only its own tenant.
    let mut foreign = push(&proxy, &bearer(&alloy));
    foreign
        .headers_mut()
        .insert("x-scope-orgid", "teama".parse().unwrap());
    assert_eq!(send(foreign).await.0, 403);

    // Every forgery and claim fault: 401, nothing reaches any upstream.
    let good = claims(iss, "lgtm-proxy", "monitoring", "alloy");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        rsa.sign(&c)
    };
    let other_key = Signer::rsa("rsa-b", RSA_B);
    let mut elevated = good.clone();
    elevated["kubernetes.io"]["namespace"] = json!("team-a");
    let refused = [
        ("wrong audience", with(&|c| c["aud"] = json!(["grafana"]))),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
        ),
        ("expired", with(&|c| c["exp"] = json!(jwt_now() - 120))),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(jwt_now() + 600)),
        ),
        ("alg none", unsigned("rsa-a", &good)),
        (
            "HS256 keyed with the public key",
            hs256("rsa-a", &rsa.public_bytes(), &good),
        ),
        ("tampered payload", tampered(&rsa.sign(&good), &elevated)),
        (
            "another key under a known kid",
            other_key.sign_with_header(&json!({"alg": "RS256", "kid": "rsa-a"}), &good),
        ),
        (
            "unknown ServiceAccount",
            rsa.sign(&claims(iss, "lgtm-proxy", "monitoring", "grafana")),
        ),
        (
            "team-b is not team-a/*",
            rsa.sign(&claims(iss, "lgtm-proxy", "team-b", "x")),
        ),
    ];
    let before = up.requests().len();
    for (what, token) in &refused {
        let (st, headers, body) = send(push(&proxy, &bearer(token))).await;
        assert_eq!(st, 401, "{what}: {}", String::from_utf8_lossy(&body));
        assert!(headers.contains_key("www-authenticate"), "{what}");
    }
    assert_eq!(
        up.requests().len(),
        before,
        "a refused token reached an upstream"
    );

    // team-a/* is every ServiceAccount of team-a.
    for sa in ["deployer", "default"] {
        let t = ec.sign(&claims(iss, "lgtm-proxy", "team-a", sa));
        assert_eq!(send(push(&proxy, &bearer(&t))).await.0, 200, "{sa}");
        assert_eq!(
            up.last().headers["authorization"],
            basic("333", "team-a-upstream-token")
        );
    }
    // Static tokens keep working beside them.
    assert_eq!(
        send(push(&proxy, &bearer("static-client-token"))).await.0,
        200
    );
    assert_eq!(up.last().headers["x-scope-orgid"], "111");
    // A kid or issuer the client made up reaches the log bounded.
    let long = "k".repeat(4000);
    let mut c = good.clone();
    c["iss"] = json!("i".repeat(4000));
    for token in [
        rsa.sign_with_header(&json!({"alg": "RS256", "kid": long}), &good),
        rsa.sign(&c),
    ] {
        assert_eq!(send(push(&proxy, &bearer(&token))).await.0, 401);
    }
    // No token ever appears in the logs.
    let logs = proxy.logs();
    assert!(
        !logs.contains(&"k".repeat(65)) && !logs.contains(&"i".repeat(65)),
        "an unbounded claim was logged"
    );
    assert!(!logs.contains(&alloy[..60]), "a token was logged");
    assert!(logs.contains("ServiceAccount token refused"), "{logs}");
}

fn jwt_now() -> i64 {
    common::jwt::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_under_load_fails_no_request_and_a_removed_key_stops_validating() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (a, b) = (
        Arc::new(Signer::rsa("key-a", RSA_A)),
        Arc::new(Signer::ec("key-b")),
    );
    let issuer = Issuer::start(jwks(&[&a])).await;
    let f = Files::new();
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &discovery(&issuer, &f)), &[]);
    let proxy = Arc::new(proxy);
    let iss = issuer.url.clone();
    let old = a.sign(&claims(&iss, "lgtm-proxy", "monitoring", "alloy"));
    eventually("key-a verifies", || async {
        send(push(&proxy, &bearer(&old))).await.0 == 200
    })
    .await;

    // Four clients push without pause; halfway through, the cluster
    // starts signing with key-b (published beside key-a), and each client
    // gets a fresh token from it, as kubelet would hand out.
    let rotated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for i in 0..4 {
        let (proxy, a, b, iss) = (proxy.clone(), a.clone(), b.clone(), iss.clone());
        let (rotated, ok, failed) = (rotated.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let mut c = claims(&iss, "lgtm-proxy", "monitoring", "alloy");
            for n in 0..120 {
                // A new token now and then (kubelet refreshes them).
                c["jti"] = json!(format!("{i}-{}", n / 10));
                let signer = if rotated.load(Ordering::SeqCst) {
                    &b
                } else {
                    &a
                };
                let token = signer.sign(&c);
                match send(push(&proxy, &bearer(&token))).await.0.as_u16() {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    while ok.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    issuer.set_jwks(jwks(&[&a, &b]));
    rotated.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed across the rotation"
    );
    assert_eq!(ok.load(Ordering::SeqCst), 480);

    // key-a leaves the JWKS. At the next refresh (here: the next token
    // naming a kid the set does not hold, at most every 10 s) its tokens
    // stop validating, cached or not.
    issuer.set_jwks(jwks(&[&b]));
    let unknown = Signer::ec("key-c").sign(&claims(&iss, "lgtm-proxy", "monitoring", "alloy"));
    eventually("key-a's token stops validating", || async {
        let _ = send(push(&proxy, &bearer(&unknown))).await;
        send(push(&proxy, &bearer(&old))).await.0 == 401
    })
    .await;
    let fresh = b.sign(&claims(&iss, "lgtm-proxy", "monitoring", "alloy"));
    assert_eq!(send(push(&proxy, &bearer(&fresh))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_down_at_start_serves_static_clients_and_recovers_without_restart() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let a = Signer::rsa("key-a", RSA_A);
    let issuer = Issuer::start(jwks(&[&a])).await;
    issuer.set_down(true);
    let f = Files::new();
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &discovery(&issuer, &f)), &[]);
    let token = a.sign(&claims(&issuer.url, "lgtm-proxy", "monitoring", "alloy"));

    assert!(
        proxy.wait_for_log("JWKS refresh failed", Duration::from_secs(20)),
        "{}",
        proxy.logs()
    );
    let (st, _, body) = get(&proxy.url("/ready?verbose")).await;
    assert_eq!(
        st, 200,
        "static-token clients are served: the proxy is ready"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kubernetes_auth"]["keys"], 0);
    assert!(v["kubernetes_auth"]["last_error"].is_string(), "{v}");
    assert_eq!(
        send(push(&proxy, &bearer("static-client-token"))).await.0,
        200
    );
    assert_eq!(send(push(&proxy, &bearer(&token))).await.0, 401);
    assert!(proxy.logs().contains("ServiceAccount token refused"));

    issuer.set_down(false);
    eventually("JWT clients are served once discovery is back", || async {
        send(push(&proxy, &bearer(&token))).await.0 == 200
    })
    .await;
    let (_, _, body) = get(&proxy.url("/ready?verbose")).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kubernetes_auth"]["keys"], 1);
    assert!(v["kubernetes_auth"]["last_error"].is_null(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_file_is_watched_like_a_secret_file() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (a, b) = (Signer::rsa("key-a", RSA_A), Signer::ec("key-b"));
    let f = Files::new();
    let iss = "https://kubernetes.default.svc.cluster.local";
    let path = f.file("jwks.json", &jwks(&[&a]));
    let keys = format!("issuer = \"{iss}\"\njwks_file = \"{path}\"");
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &keys), &[]);
    let (ta, tb) = (
        a.sign(&claims(iss, "lgtm-proxy", "monitoring", "alloy")),
        b.sign(&claims(iss, "lgtm-proxy", "monitoring", "alloy")),
    );
    assert_eq!(send(push(&proxy, &bearer(&ta))).await.0, 200);
    assert_eq!(send(push(&proxy, &bearer(&tb))).await.0, 401);
    // A swap by rename: the new set replaces the old one.
    let next = f.file("jwks.json.next", &jwks(&[&b]));
    std::fs::rename(next, &path).unwrap();
    eventually("the new key set is taken", || async {
        send(push(&proxy, &bearer(&tb))).await.0 == 200
    })
    .await;
    assert_eq!(
        send(push(&proxy, &bearer(&ta))).await.0,
        401,
        "a removed key's cached token"
    );
}

/// A ConfigMap volume (`jwks.json -> ..data/jwks.json`, `..data` swapped
/// to a new version directory by kubelet): the proxy follows the link and
/// takes the new key set, and a token of the dropped key stops working.
#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_file_in_a_configmap_volume_follows_the_data_swap() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let (a, b) = (Signer::rsa("key-a", RSA_A), Signer::ec("key-b"));
    let f = Files::new();
    let iss = "https://kubernetes.default.svc.cluster.local";
    let dir = tempfile::tempdir().unwrap();
    let mut volume = SecretVolume::new(dir.path(), "jwks.json", &jwks(&[&a]));
    let path = dir.path().join("jwks.json");
    let keys = format!("issuer = \"{iss}\"\njwks_file = \"{}\"", path.display());
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &keys), &[]);
    let (ta, tb) = (
        a.sign(&claims(iss, "lgtm-proxy", "monitoring", "alloy")),
        b.sign(&claims(iss, "lgtm-proxy", "monitoring", "alloy")),
    );
    assert_eq!(send(push(&proxy, &bearer(&ta))).await.0, 200);
    assert_eq!(send(push(&proxy, &bearer(&tb))).await.0, 401);
    volume.update("jwks.json", &jwks(&[&b]));
    eventually("the swapped key set is taken", || async {
        send(push(&proxy, &bearer(&tb))).await.0 == 200
    })
    .await;
    assert_eq!(
        send(push(&proxy, &bearer(&ta))).await.0,
        401,
        "a token of the key the swap dropped"
    );
    // Both keys in the next version: both verify.
    volume.update("jwks.json", &jwks(&[&a, &b]));
    eventually("both keys are taken", || async {
        send(push(&proxy, &bearer(&ta))).await.0 == 200
    })
    .await;
    assert_eq!(send(push(&proxy, &bearer(&tb))).await.0, 200);
}

#[test]
fn config_errors_name_the_field() {
    let f = Files::new();
    let cases = [
        (
            "[[tenants.t.clients]]\nname = \"a\"\nservice_account = \"monitoring/alloy\"\n",
            "tenants.t.clients.a.service_account: needs a [kubernetes_auth] table",
        ),
        (
            "[kubernetes_auth]\nissuer = \"http://k\"\naudiences = [\"x\"]\njwks_file = \"/nonexistent\"\n",
            "kubernetes_auth.issuer",
        ),
        (
            "[kubernetes_auth]\nissuer = \"https://k\"\naudiences = []\njwks_file = \"/nonexistent\"\n",
            "kubernetes_auth.audiences",
        ),
        (
            "[kubernetes_auth]\nissuer = \"https://k\"\naudiences = [\"x\"]\njwks_file = \"/nonexistent\"\n",
            "kubernetes_auth.jwks_file",
        ),
        (
            "[kubernetes_auth]\nissuer = \"https://k\"\naudiences = [\"x\"]\njwks_file = \"/nonexistent\"\n[[tenants.t.clients]]\nname = \"a\"\nservice_account = \"Monitoring\"\n",
            "tenants.t.clients[0].service_account: \"Monitoring\" is not namespace/name",
        ),
    ];
    for (toml, want) in cases {
        let path = f.file("c.toml", toml);
        let out = common::proxy::command(&[("LGTM_CONFIG", &path)])
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(err.contains(want), "{toml}\n-> {err}");
    }
}

/// A real Prometheus agent remote-writes with `authorization:
/// {credentials_file}` holding a signed ServiceAccount token, as it would
/// with kubelet's projected file, and lands in stage with stage's
/// credentials.
#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_agent_with_a_service_account_token_lands_in_its_tenant() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let ec = Signer::ec("ec-1");
    let issuer = Issuer::start(jwks(&[&ec])).await;
    let f = Files::new();
    let (proxy, _cfg) = ProxyProc::start_with_file(&config(&up, &f, &discovery(&issuer, &f)), &[]);
    let token = ec.sign(&claims(&issuer.url, "lgtm-proxy", "monitoring", "alloy"));
    let token_file = f.file("projected-token", &token);
    let yml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{{PORT}}']\nremote_write:\n  - url: {}\n    authorization:\n      credentials_file: {token_file}\n    queue_config:\n      batch_send_deadline: 1s\n",
        proxy.url("/api/prom/push")
    );
    let _agent = common::prometheus::Prometheus::start(&["--enable-feature=agent"], &yml, false);
    eventually("the agent's samples reach stage's upstream", || async {
        up.requests().iter().any(|r| {
            r.method == "POST"
                && r.headers
                    .get("user-agent")
                    .is_some_and(|u| u.to_str().unwrap_or("").starts_with("Prometheus/"))
                && r.headers
                    .get("content-encoding")
                    .is_some_and(|e| e == "snappy")
        })
    })
    .await;
    for r in up.requests().iter().filter(|r| r.method == "POST") {
        assert_eq!(
            r.headers["authorization"],
            basic("111", "stage-upstream-token")
        );
        assert_eq!(r.headers["x-scope-orgid"], "111");
    }
    let (_, _, metrics) = get(&proxy.url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics);
    assert_eq!(
        sample(&text, &["lgtm_proxy_auth_failures_total"]).unwrap_or(0.0),
        0.0,
        "the agent's requests were all accepted"
    );
}
