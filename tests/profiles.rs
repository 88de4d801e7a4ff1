//! Profiles (Grafana Cloud Profiles, Pyroscope) through the proxy. The real
//! Pyroscope Python SDK (PyPI: pyroscope-io; scripts/test.sh installs it)
//! pushes with no credentials, its server address either the proxy's root
//! or its `/pyroscope` prefix, and a recording upstream sees the Connect
//! push with the injected Basic header and OrgID. Connect calls over
//! HTTP/1.1 and h2c keep their classes: push and the legacy `/ingest` are
//! `write`, querier calls `read`, in every spelling a reader might try.

mod common;

use std::process::Command;

use common::spelling::{raw_request, refused, spellings, token_file};
use common::*;
use http::{Method, Request, Version};

const PUSH: &str = "/push.v1.PusherService/Push";
const QUERY: &str = "/querier.v1.QuerierService/SelectMergeStacktraces";

/// The SDK profiles a busy loop for `seconds` and pushes to `server`,
/// within 60 s.
fn sdk_push(server: String, seconds: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pyroscope_push.py");
    // Bounded: an SDK that never finishes fails the test, not CI's clock.
    let out = Command::new("timeout")
        .args(["--kill-after=5", "60", "python3", script, &server, seconds])
        .output()
        .expect("timeout (coreutils) and python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pushed"),
        "the Pyroscope SDK failed (run scripts/test.sh, which installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pyroscope_sdk_pushes_through_the_root_and_the_prefix() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let proxy = ProxyProc::start(&[
        ("LGTM_PYROSCOPE_URL", &up.url()),
        ("LGTM_PYROSCOPE_USER", "918273"),
        ("LGTM_PYROSCOPE_TOKEN", "profiles-token"),
    ]);
    for server in [proxy.url(""), proxy.url("/pyroscope")] {
        let before = up.requests().len();
        let s = server.clone();
        tokio::task::spawn_blocking(move || sdk_push(s, "2.5"))
            .await
            .unwrap();
        let pushes = up.requests().split_off(before);
        assert!(
            !pushes.is_empty(),
            "{server}: the SDK's pushes reached nothing"
        );
        for rec in &pushes {
            assert_eq!(rec.method, "POST", "{server}");
            assert_eq!(
                rec.target, PUSH,
                "{server}: the path as the upstream sees it"
            );
            assert_eq!(
                rec.headers["authorization"],
                basic("918273", "profiles-token").as_str()
            );
            assert_eq!(rec.headers["x-scope-orgid"], "918273");
            assert_eq!(rec.headers["content-type"], "application/proto");
            assert_eq!(rec.headers["content-encoding"], "gzip");
            // The gzip magic: the body passes as the SDK compressed it.
            assert!(rec.body.starts_with(&[0x1f, 0x8b]), "{server}");
        }
    }
    assert!(wait_for_metric(&proxy.url(""), r#"upstream="pyroscope""#).await);
    let logs = proxy.logs();
    assert!(
        !logs.contains("profiles-token"),
        "the token leaked into logs"
    );
}

/// A proxy with one tenant whose pyroscope upstream has a base path, and
/// a reader and a writer client.
async fn tenant_setup(
    dir: &std::path::Path,
) -> (ProxyProc, RecordingUpstream, tempfile::NamedTempFile) {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let toml = format!(
        r#"
[tenants.team.upstreams.pyroscope]
url = "{url}/profiles"
user = "4455"
token = "team-profiles-token"
tenant = "team-org"
[[tenants.team.clients]]
name = "reader"
token_file = "{reader}"
access = ["read"]
[[tenants.team.clients]]
name = "writer"
token_file = "{writer}"
access = ["write"]
"#,
        url = up.url(),
        reader = token_file(dir, "reader"),
        writer = token_file(dir, "writer"),
    );
    let (proxy, f) = ProxyProc::start_with_file(&toml, &[]);
    (proxy, up, f)
}

async fn connect_call(
    proxy: &ProxyProc,
    version: Version,
    path: &str,
    token: &str,
) -> (u16, String) {
    let client = if version == Version::HTTP_2 {
        h2c_client()
    } else {
        client()
    };
    let req = Request::builder()
        .method(Method::POST)
        .uri(proxy.url(path))
        .version(version)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(full(&b"\x0a\x02hi"[..]))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.version(), version, "{path}");
    let (s, _, body) = read(res).await;
    (s.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_push_and_querier_calls_keep_their_classes_over_http1_and_h2c() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, up, _f) = tenant_setup(dir.path()).await;
    for version in [Version::HTTP_11, Version::HTTP_2] {
        for (path, upstream_path) in [
            (PUSH, PUSH.to_string()),
            (&*format!("/pyroscope{PUSH}"), PUSH.to_string()),
            (
                "/pyroscope/ingest?name=app.cpu&format=pprof",
                "/ingest?name=app.cpu&format=pprof".to_string(),
            ),
        ] {
            // The reader may not push, in either spelling.
            let before = up.requests().len();
            let (s, body) = connect_call(&proxy, version, path, "reader-secret").await;
            assert_eq!(s, 403, "{version:?} reader {path}: {body}");
            assert!(body.contains("may not write"), "{body}");
            assert_eq!(
                up.requests().len(),
                before,
                "{path}: a refused push was forwarded"
            );
            // The writer may.
            let (s, body) = connect_call(&proxy, version, path, "writer-secret").await;
            assert_eq!(s, 200, "{version:?} writer {path}: {body}");
            let rec = up.last();
            assert_eq!(rec.target, format!("/profiles{upstream_path}"));
            assert_eq!(
                rec.headers["authorization"],
                basic("4455", "team-profiles-token").as_str()
            );
            assert_eq!(rec.headers["x-scope-orgid"], "team-org");
        }
        for path in [QUERY.to_string(), format!("/pyroscope{QUERY}")] {
            let before = up.requests().len();
            let (s, body) = connect_call(&proxy, version, &path, "writer-secret").await;
            assert_eq!(s, 403, "{version:?} writer {path}: {body}");
            assert_eq!(up.requests().len(), before);
            let (s, body) = connect_call(&proxy, version, &path, "reader-secret").await;
            assert_eq!(s, 200, "{version:?} reader {path}: {body}");
            assert_eq!(up.last().target, format!("/profiles{QUERY}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_lets_a_reader_push_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, up, _f) = tenant_setup(dir.path()).await;
    let headers = [("content-type", "application/proto")];
    let mut tried = 0;
    for path in [
        PUSH.to_string(),
        format!("/pyroscope{PUSH}"),
        "/pyroscope/ingest".to_string(),
    ] {
        for spelled in spellings(&path) {
            let (s, resp) = raw_request(
                &proxy,
                "POST",
                &spelled,
                "reader-secret",
                &headers,
                b"x".to_vec(),
            )
            .await;
            assert!(refused(s), "reader POST {spelled}: {resp}");
            tried += 1;
        }
    }
    assert!(tried > 60, "{tried}");
    let seen: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert!(
        seen.is_empty(),
        "a reader's push reached the upstream: {seen:?}"
    );
    // Positive control: the same socket path works for the writer.
    let (s, resp) = raw_request(
        &proxy,
        "POST",
        PUSH,
        "writer-secret",
        &headers,
        b"x".to_vec(),
    )
    .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(up.last().target, format!("/profiles{PUSH}"));
}
