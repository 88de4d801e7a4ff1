//! Routes (checked, file routes over the built-ins) and upstream TLS
//! (`ca_file` must hold usable certificates).

use super::*;

#[test]
fn routes_are_checked() {
    let toml = r#"
[[routes]]
prefix = "nope"
upstream = "loki"
[[routes]]
prefix = "/trailing/"
upstream = "loki"
[[routes]]
prefix = "/x"
upstream = "ghost"
[[routes]]
prefix = "/dup"
upstream = "loki"
[[routes]]
prefix = "/dup"
upstream = "tempo"
[[routes]]
prefix = "/metrics"
upstream = "loki"
[[routes]]
prefix = "/r"
upstream = "loki"
rewrite = "no-slash"
"#;
    let p = problems(toml, &[]);
    assert!(has(&p, "routes[0].prefix: must start with '/'"), "{p:?}");
    assert!(has(&p, "routes[1].prefix: must not end with '/'"), "{p:?}");
    assert!(
        has(&p, "routes[2].upstream: unknown upstream \"ghost\""),
        "{p:?}"
    );
    assert!(has(&p, "routes[4].prefix: duplicate prefix /dup"), "{p:?}");
    assert!(has(&p, "routes[5].prefix: is reserved"), "{p:?}");
    assert!(
        has(&p, "routes[6].rewrite: must be empty or a path"),
        "{p:?}"
    );
    assert_eq!(p.len(), 6, "{p:?}");
}

#[test]
fn file_routes_replace_builtins_and_add_upstreams() {
    let toml = r#"
[upstreams.mimir]
url = "http://mimir:8080/prom"
basic_auth = false
[[routes]]
prefix = "/prometheus"
upstream = "mimir"
rewrite = ""
[[routes]]
prefix = "/alertmanager"
upstream = "alertmanager"
"#;
    let c = from(toml, &[("LGTM_MIMIR_TENANT", "t1")]).unwrap();
    let prom: Vec<_> = c
        .routes
        .iter()
        .filter(|r| r.prefix == "/prometheus")
        .collect();
    assert_eq!(prom.len(), 1);
    assert_eq!(
        (prom[0].upstream.as_str(), prom[0].rewrite.as_str()),
        ("mimir", "")
    );
    assert_eq!(c.upstreams["mimir"].base_path, "/prom");
    assert_eq!(
        c.upstreams["mimir"].tenant.as_deref(),
        Some("t1"),
        "env reaches TOML-named upstreams"
    );
}

#[test]
fn ca_file_must_hold_usable_pem_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let bad_der = dir.path().join("bad.pem");
    std::fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, needle) in [
        (&junk, "holds no PEM certificate"),
        (&bad_der, "not a usable CA certificate"),
    ] {
        let p = problems(
            "",
            &[
                ("LGTM_LOKI_URL", "https://l"),
                ("LGTM_LOKI_USER", "1"),
                ("LGTM_TOKEN", "t"),
                ("LGTM_LOKI_CA_FILE", file.to_str().unwrap()),
            ],
        );
        assert!(
            has(&p, "upstreams.loki.ca_file") && has(&p, needle),
            "{p:?}"
        );
    }
    let p = problems(
        "",
        &[
            ("LGTM_LOKI_URL", "https://l"),
            ("LGTM_LOKI_USER", "1"),
            ("LGTM_TOKEN", "t"),
            ("LGTM_LOKI_CA_FILE", "/nonexistent.pem"),
        ],
    );
    assert!(
        has(&p, "upstreams.loki.ca_file: cannot read /nonexistent.pem"),
        "{p:?}"
    );
}
