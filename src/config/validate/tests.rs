use std::io::Write as _;

use super::super::{layer, load_from, render_effective, ConfigErrors, DEFAULT_TIMEOUT};
use super::*;

mod tenants;
mod upstreams;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn from(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    layer(Some(toml), env(vars)).and_then(validate)
}

fn problems(toml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    from(toml, vars).expect_err("config should be invalid").0
}

/// The token upstream `name` of `c` sends.
fn token_of<'a>(c: &'a Config, name: &str) -> &'a str {
    c.upstreams[name]
        .credentials
        .as_ref()
        .unwrap()
        .token
        .expose()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

const PROM: &[(&str, &str)] = &[
    (
        "LGTM_PROMETHEUS_URL",
        "https://prometheus-prod-56-prod-us-east-2.grafana.net",
    ),
    ("LGTM_PROMETHEUS_USER", "2668285"),
    ("LGTM_TOKEN", "glc_shared"),
];

#[test]
fn env_alone_is_enough() {
    let c = from("", PROM).unwrap();
    let p = &c.upstreams["prometheus"];
    assert_eq!(p.credentials.as_ref().unwrap().user, "2668285");
    assert_eq!(p.credentials.as_ref().unwrap().token.expose(), "glc_shared");
    assert_eq!(p.tenant.as_deref(), Some("2668285"));
    assert_eq!(p.timeout, DEFAULT_TIMEOUT);
    assert_eq!(c.startup.listen.to_string(), "0.0.0.0:8085");
}

#[test]
fn relative_url_is_named() {
    let p = problems(
        "",
        &[
            ("LGTM_LOKI_URL", "logs-prod-036.grafana.net"),
            ("LGTM_LOKI_USER", "1"),
            ("LGTM_TOKEN", "t"),
        ],
    );
    assert_eq!(p, ["upstreams.loki.url: relative URL without a base"]);
}

#[test]
fn unsupported_scheme_and_url_credentials_are_rejected_without_echo() {
    let p = problems(
        "",
        &[
            ("LGTM_LOKI_URL", "ftp://x"),
            ("LGTM_TEMPO_URL", "https://u:hunter2@t.example"),
            ("LGTM_TOKEN", "t"),
            ("LGTM_LOKI_USER", "1"),
            ("LGTM_TEMPO_USER", "1"),
        ],
    );
    assert!(
        has(&p, "upstreams.loki.url: unsupported scheme ftp"),
        "{p:?}"
    );
    assert!(
        has(&p, "upstreams.tempo.url: credentials in the URL"),
        "{p:?}"
    );
    assert!(!p.iter().any(|l| l.contains("hunter2")));
}

#[test]
fn configured_upstream_needs_user_and_token() {
    let p = problems("", &[("LGTM_LOKI_URL", "https://logs.example")]);
    assert!(has(&p, "upstreams.loki.user: required"), "{p:?}");
    assert!(has(&p, "upstreams.loki.token: required"), "{p:?}");
}

#[test]
fn basic_auth_false_needs_neither() {
    let c = from(
        "",
        &[
            ("LGTM_LOKI_URL", "http://loki:3100"),
            ("LGTM_LOKI_BASIC_AUTH", "false"),
            ("LGTM_LOKI_TENANT", "team-a"),
        ],
    )
    .unwrap();
    assert!(c.upstreams["loki"].credentials.is_none());
    assert_eq!(c.upstreams["loki"].tenant.as_deref(), Some("team-a"));
}

#[test]
fn empty_tenant_sends_no_orgid() {
    let mut vars = PROM.to_vec();
    vars.push(("LGTM_PROMETHEUS_TENANT", ""));
    let c = from("", &vars).unwrap();
    assert_eq!(c.upstreams["prometheus"].tenant, None);
}

#[test]
fn token_files_are_read_trimmed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("token");
    std::fs::File::create(&good)
        .unwrap()
        .write_all(b"glc_from_file\n")
        .unwrap();
    let empty = dir.path().join("empty");
    std::fs::File::create(&empty)
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    let c = from(
        "",
        &[
            ("LGTM_LOKI_URL", "https://l.example"),
            ("LGTM_LOKI_USER", "1"),
            ("LGTM_LOKI_TOKEN_FILE", good.to_str().unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(token_of(&c, "loki"), "glc_from_file");

    let p = problems(
        "",
        &[
            ("LGTM_LOKI_URL", "https://l.example"),
            ("LGTM_LOKI_USER", "1"),
            ("LGTM_LOKI_TOKEN_FILE", empty.to_str().unwrap()),
        ],
    );
    assert!(
        has(&p, "upstreams.loki.token_file:") && has(&p, "is empty"),
        "{p:?}"
    );
    assert!(
        !has(&p, "upstreams.loki.token: required"),
        "one problem, not two: {p:?}"
    );
    let p = problems("", &[("LGTM_TOKEN_FILE", "/nonexistent/token")]);
    assert_eq!(
        p,
        ["token_file: cannot read /nonexistent/token: entity not found"]
    );
}

#[test]
fn durations_and_listen_are_checked() {
    let p = problems(
        "listen = \"8085\"\nshutdown_delay = \"soon\"\n[upstreams.loki]\nurl = \"http://l\"\nbasic_auth = false\ntimeout = \"0s\"\nconnect_timeout = \"5 parsecs\"\n",
        &[],
    );
    assert!(has(&p, "listen: not a socket address"), "{p:?}");
    assert!(has(&p, "shutdown_delay: not a duration"), "{p:?}");
    assert!(
        has(&p, "upstreams.loki.timeout: must be greater than zero"),
        "{p:?}"
    );
    assert!(
        has(&p, "upstreams.loki.connect_timeout: not a duration"),
        "{p:?}"
    );
    assert_eq!(p.len(), 4);
}

#[test]
fn env_wins_over_the_file() {
    let c = from(
        "listen = \"127.0.0.1:1\"\n[upstreams.loki]\nurl = \"http://a\"\nbasic_auth = false\n",
        &[
            ("LGTM_LISTEN", "127.0.0.1:2"),
            ("LGTM_LOKI_URL", "http://b"),
        ],
    )
    .unwrap();
    assert_eq!(c.startup.listen.port(), 2);
    assert_eq!(c.upstreams["loki"].authority.as_str(), "b");
}

#[test]
fn unknown_file_keys_are_named_but_unknown_env_is_ignored() {
    let p = problems("[upstreams.loki]\nurll = \"http://x\"\n", &[]);
    assert_eq!(
        p,
        ["upstreams.loki.urll (from TOML source string): unknown key"]
    );
    let p = problems("lisen = \"x\"\n", &[]);
    assert!(has(&p, "lisen") && has(&p, "unknown key"), "{p:?}");
    let mut vars = PROM.to_vec();
    vars.extend([
        ("LGTM_PROXY_SERVICE_HOST", "10.0.0.1"),
        ("LGTM_PROXY_PORT", "tcp://10.0.0.1:8085"),
        ("LGTM_PROXY_PORT_8085_TCP_PROTO", "tcp"),
        ("LGTM_SOMETHING_ELSE", "x"),
    ]);
    assert!(from("", &vars).is_ok());
}

#[test]
fn upstream_names_are_checked() {
    let p = problems(
        "[upstreams.Bad-Name]\nurl = \"http://x\"\n[upstreams.token]\nurl = \"http://x\"\n",
        &[],
    );
    assert!(has(&p, "upstreams.Bad-Name: upstream names match"), "{p:?}");
    assert!(has(&p, "upstreams.token: upstream names match"), "{p:?}");
}

#[test]
fn numeric_user_is_accepted_and_type_errors_hide_the_value() {
    let c = from(
        "[upstreams.loki]\nurl = \"https://l\"\nuser = 1329819\ntoken = \"t\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.upstreams["loki"].credentials.as_ref().unwrap().user,
        "1329819"
    );
    let p = problems("[upstreams.loki]\ntoken = 987654321\n", &[]);
    assert!(
        has(&p, "upstreams.loki.token") && has(&p, "invalid type"),
        "{p:?}"
    );
    assert!(!p.iter().any(|l| l.contains("987654321")), "{p:?}");
    let p = problems("token = \"glc_secret_in_broken_toml\n", &[]);
    assert!(!p.iter().any(|l| l.contains("glc_secret")), "{p:?}");
}

#[test]
fn bad_log_settings_are_named() {
    let p = problems("", &[("LGTM_LOG_FORMAT", "xml"), ("LGTM_LOG", "info,[[[")]);
    assert!(has(&p, "log_format: must be json or text"), "{p:?}");
    assert!(has(&p, "log: not a valid tracing filter"), "{p:?}");
}

#[test]
fn a_log_filter_with_spaces_and_multibyte_text_is_checked_not_a_panic() {
    // tracing-subscriber sliced the untrimmed directive at the trimmed
    // one's char boundary: this panicked (env_and_toml fuzz target).
    let p = problems("", &[("LGTM_LOG", "info, _CA_FI\u{5f3}=[[[")]);
    assert!(has(&p, "log: not a valid tracing filter"), "{p:?}");
    if let Err(p) = from("", &[("LGTM_LOG", " \u{e9}x=debug , lgtm_proxy=debug ")]) {
        assert!(!has(&p.0, "log:"), "{:?}", p.0);
    }
}

#[test]
fn a_log_filter_field_value_is_literal_never_a_regular_expression() {
    // As a regular expression `(` does not compile and the filter would be
    // refused; as a literal it is a value like any other. (Compiled, a
    // field value such as `(a|b)*a(a|b)(a|b)...` became a dense DFA with
    // 2^20 states: 14.8 s and 836 MB to check a 120-byte LGTM_LOG.)
    if let Err(p) = from("", &[("LGTM_LOG", "info,lgtm_proxy[{f=(}]=debug")]) {
        assert!(!has(&p.0, "log:"), "{:?}", p.0);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        "listen = \"x\"\n",
        &[
            ("LGTM_LOKI_URL", "nope"),
            ("LGTM_TEMPO_URL", "https://t"),
            ("LGTM_OTLP_TIMEOUT", "never"),
        ],
    );
    assert!(p.len() >= 5, "{p:?}");
}

#[test]
fn missing_config_file_is_named() {
    let e = load_from(
        Some(std::path::Path::new("/nonexistent/lgtm.toml")),
        env(&[]),
    )
    .unwrap_err();
    assert_eq!(
        e.0,
        ["config file /nonexistent/lgtm.toml: entity not found"]
    );
}

#[test]
fn check_config_output_redacts_and_loads_back() {
    let c = from("", PROM).unwrap();
    let out = render_effective(&c);
    assert!(!out.contains("glc_shared"), "{out}");
    assert!(out.contains("token = \"<redacted>\""), "{out}");
    // The output is valid input (with the real token given again by env).
    let again = from(
        &out.replace("token = \"<redacted>\"\n", ""),
        &[("LGTM_TOKEN", "glc_shared")],
    )
    .unwrap();
    assert_eq!(again.routes, c.routes);
    assert_eq!(
        again.upstreams["prometheus"].url(),
        c.upstreams["prometheus"].url()
    );
}

#[test]
fn a_reload_names_the_start_only_keys_it_cannot_apply() {
    let running = from("", PROM).unwrap();
    let next = from(
        "listen = \"127.0.0.1:9999\"\nlog = \"debug\"\nmax_in_flight = 5\nheader_read_timeout = \"3s\"",
        PROM,
    )
    .unwrap();
    // The caps and timeouts that follow a reload are not named.
    assert_eq!(running.startup.changes(&next.startup), ["listen", "log"]);
    assert!(running.startup.changes(&running.clone().startup).is_empty());
    let timings = from("shutdown_delay = \"1s\"\nshutdown_grace = \"2s\"", PROM).unwrap();
    assert_eq!(
        running.startup.changes(&timings.startup),
        ["shutdown_delay", "shutdown_grace"]
    );
}

#[test]
fn the_readme_lists_exactly_the_start_only_keys() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("Start-only keys")
        .expect("README names the start-only keys");
    let para = &readme[start..];
    let para = &para[..para
        .find("TOKIO_WORKER_THREADS")
        .expect("and the runtime's threads")];
    let listed: Vec<&str> = para
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(listed, crate::config::START_ONLY_KEYS);
}
