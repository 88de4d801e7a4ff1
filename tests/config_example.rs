//! The shipped example config loads, and every key it documents is one the
//! loader accepts (commented keys are uncommented and loaded too).

mod common;

use common::proxy;

#[test]
fn shipped_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lgtm-proxy.toml");
    let out = proxy::command(&[("LGTM_TOKEN", "glc_example")])
        .args(["--config", path, "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for up in ["prometheus", "loki", "tempo", "otlp"] {
        assert!(stdout.contains(&format!("[upstreams.{up}]")), "{stdout}");
    }
}

#[test]
fn every_commented_key_is_accepted() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/lgtm-proxy.toml"
    ))
    .unwrap();
    // Uncomment `# key = value` lines (not prose); secret paths point at
    // files made here (a distinct token each); the CA path is dropped.
    let dir = tempfile::tempdir().unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest
                            .split_once(" = ")
                            .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest.to_string()
                }
                _ => l.to_string(),
            }
        })
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let uncommented = proxy::with_local_secrets(&uncommented, dir.path())
        .replace(
            "/etc/lgtm-proxy/metricaccess",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/metricaccess/seed000"
            ),
        )
        .replace(
            "/etc/lgtm-proxy/jwks.json",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/jwks.json"),
        );
    let path = dir.path().join("all.toml");
    std::fs::write(&path, &uncommented).unwrap();
    let out = proxy::command(&[("LGTM_TOKEN", "glc_example")])
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n---\n{uncommented}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("[upstreams.mimir]")
            && stdout.contains("prefix = \"/mimir\"")
            && stdout.contains("name = \"webapp-infra\"")
            && stdout.contains("seed000-prometheus.yaml"),
        "{stdout}"
    );
}
