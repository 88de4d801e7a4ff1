//! Tenants: inherited upstreams, named problems, client tokens and
//! their files, `require_client_auth`, route classes.

use super::*;

fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, value).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn tenant_upstreams_inherit_everything_but_the_orgid() {
    let toml = r#"
[upstreams.prometheus]
url = "https://top.example/base"
user = "100"
token = "top"
tenant = "top-org"
timeout = "9s"
[tenants.stage.upstreams.prometheus]
user = "111"
[tenants.prod.upstreams.prometheus]
[tenants.solo.upstreams.prometheus]
basic_auth = false
user = ""
"#;
    let c = from(toml, &[]).unwrap();
    let stage = &c.tenants["stage"].upstreams["prometheus"];
    assert_eq!(stage.url(), "https://top.example/base");
    assert_eq!(stage.timeout, std::time::Duration::from_secs(9));
    assert_eq!(stage.credentials.as_ref().unwrap().user, "111");
    assert_eq!(stage.credentials.as_ref().unwrap().token.expose(), "top");
    assert_eq!(
        stage.tenant.as_deref(),
        Some("111"),
        "OrgID = own user, never top-org"
    );
    let prod = &c.tenants["prod"].upstreams["prometheus"];
    assert_eq!(
        prod.tenant.as_deref(),
        Some("100"),
        "OrgID = effective (inherited) user"
    );
    let solo = &c.tenants["solo"].upstreams["prometheus"];
    assert_eq!(
        solo.tenant.as_deref(),
        Some("solo"),
        "no user at all: the tenant's key"
    );
    assert!(!c.require_client_auth, "no client tokens: not required");
}

#[test]
fn tenant_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let same = secret_file(&dir, "same", "dup-token\n");
    let empty = secret_file(&dir, "empty", "# only a comment\n\n");
    let toml = format!(
        r#"
[tenants.default.upstreams.loki]
url = "http://l"
basic_auth = false
[tenants."a|b"]
[tenants.stage]
client_tokens_file = "{empty}"
[tenants.stage.upstreams.tempo]
user = "1"
[[tenants.stage.clients]]
name = "x"
token_file = "{same}"
access = ["read", "root"]
[[tenants.stage.clients]]
name = "y"
token_file = "{same}"
rate = -1
"#
    );
    let p = problems(&toml, &[]);
    assert!(has(&p, "tenants.default: tenant names"), "{p:?}");
    assert!(has(&p, "tenants.a|b: tenant names"), "{p:?}");
    assert!(
        has(&p, "tenants.stage.client_tokens_file:") && has(&p, "holds no token"),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "tenants.stage.upstreams.tempo.url: required: there is no top-level url"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "tenants.stage.clients[0].access: unknown class \"root\""
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "tenants.stage.clients[1].rate: must be a positive number"
        ),
        "{p:?}"
    );
}

#[test]
fn duplicate_client_tokens_across_tenants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = secret_file(&dir, "a", "shared-client-token\n");
    let b = secret_file(&dir, "b", "shared-client-token");
    let toml = format!("[[tenants.stage.clients]]\nname = \"a\"\ntoken_file = \"{a}\"\n[[tenants.prod.clients]]\nname = \"b\"\ntoken_file = \"{b}\"\n");
    let p = problems(&toml, &[]);
    assert!(has(&p, "same token as"), "{p:?}");
    assert!(
        !p.iter().any(|l| l.contains("shared-client-token")),
        "{p:?}"
    );
}

#[test]
fn require_client_auth_needs_someone_to_authenticate() {
    let p = problems("require_client_auth = true\n", &[]);
    assert!(
        has(
            &p,
            "require_client_auth: is true but no tenant has client credentials"
        ),
        "{p:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let t = secret_file(&dir, "t", "tok");
    let c = from(
        &format!("[[tenants.stage.clients]]\nname = \"a\"\ntoken_file = \"{t}\"\n"),
        &[],
    )
    .unwrap();
    assert!(
        c.require_client_auth,
        "client tokens make auth required by default"
    );
    assert!(
        c.watched_files
            .iter()
            .any(|f| f.to_str() == Some(t.as_str())),
        "client token files are watched"
    );
}

#[test]
fn route_class_is_checked() {
    let p = problems(
        "[[routes]]\nprefix = \"/x\"\nupstream = \"loki\"\nclass = \"superuser\"\n",
        &[],
    );
    assert_eq!(p, ["routes[0].class: must be read, write or admin"]);
}

#[test]
fn token_and_token_file_in_one_source_is_a_problem() {
    let p = problems(
        "[upstreams.loki]\nurl = \"https://l\"\nuser = \"1\"\ntoken_file = \"/x\"\ntoken = \"t\"\n",
        &[],
    );
    assert!(has(&p, "upstreams.loki.token: set either"), "{p:?}");
}

#[test]
fn an_env_secret_replaces_the_files_other_form() {
    let c = from(
        "token_file = \"/nonexistent\"\n[upstreams.loki]\nurl = \"https://l\"\nuser = \"1\"\ntoken_file = \"/x\"\n",
        &[("LGTM_LOKI_TOKEN", "from-env"), ("LGTM_TOKEN", "shared-env")],
    )
    .unwrap();
    assert_eq!(token_of(&c, "loki"), "from-env");
    let dir = tempfile::tempdir().unwrap();
    let f = secret_file(&dir, "t", "from-env-file\n");
    let c = from(
        "[upstreams.loki]\nurl = \"https://l\"\nuser = \"1\"\ntoken = \"inline\"\n",
        &[("LGTM_LOKI_TOKEN_FILE", f.as_str())],
    )
    .unwrap();
    assert_eq!(token_of(&c, "loki"), "from-env-file");
}
