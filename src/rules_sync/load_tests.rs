use std::path::Path;

use crate::config::{layer, validate, Config, ConfigErrors};

/// Two tenants with their own stacks; no top-level prometheus.
const TENANTS: &str = r#"
[tenants.stage.upstreams.prometheus]
url = "https://stage.example"
user = "111"
token = "stage-token"
[tenants.prod.upstreams.prometheus]
url = "https://prod.example"
user = "222"
token = "prod-token"
"#;

fn load(extra: &str, dir: &Path) -> Result<Config, ConfigErrors> {
    let toml = format!(
        "{TENANTS}\n[rules_sync]\ndir = {:?}\n{extra}",
        dir.display().to_string()
    );
    layer(Some(&toml), Vec::new()).and_then(validate)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const STAGE_RULE: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: app-alerts
  namespace: webapp
  labels: {tenant: stage, team: web}
  uid: 1234
  annotations: {note: anything}
spec:
  groups:
    - name: app
      rules:
        - alert: AppDown
          expr: up{job="app"} == 0
          for: 5m
"#;

#[test]
fn resources_and_plain_files_reach_their_tenants_rulers() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "stage.yaml", STAGE_RULE);
    write(
        dir.path(),
        "prod-recording.yml",
        "tenant: prod\ngroups:\n  - name: rec\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
    );
    let c = load("", dir.path()).unwrap();
    let rs = c.rules_sync.unwrap();
    assert!(rs.problems.is_empty(), "{:?}", rs.problems);
    assert_eq!(rs.prefix, "lgtm-");
    assert_eq!(rs.interval, std::time::Duration::from_secs(60));
    let by: std::collections::BTreeMap<String, Vec<String>> = rs
        .rulers
        .iter()
        .map(|r| (r.label(), r.namespaces.keys().cloned().collect()))
        .collect();
    assert_eq!(by["stage"], ["lgtm-webapp-app-alerts"]);
    assert_eq!(by["prod"], ["lgtm-prod-recording"]);
    assert!(c.watched_files.contains(&dir.path().to_path_buf()));
}

#[test]
fn tenants_sharing_a_stack_share_one_ruler() {
    // prod inherits url and user (so its org ID) from the top level; qa
    // has no prometheus at all.
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[upstreams.prometheus]
url = "https://one.example"
user = "1"
token = "t"
[tenants.prod.upstreams.prometheus]
[tenants.qa]
max_in_flight = 10
[tenants.stage.upstreams.prometheus]
user = "2"
"#;
    let full = format!(
        "{toml}\n[rules_sync]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let c = layer(Some(&full), Vec::new()).and_then(validate).unwrap();
    let labels: Vec<String> = c
        .rules_sync
        .unwrap()
        .rulers
        .iter()
        .map(|r| r.label())
        .collect();
    assert_eq!(labels, ["default+prod", "stage"]);
}

#[test]
fn a_bad_file_is_reported_by_field_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a-good.yaml", STAGE_RULE);
    write(
        dir.path(),
        "b-bad-expr.yaml",
        &STAGE_RULE
            .replace("app-alerts", "broken")
            .replace(r#"up{job="app"} == 0"#, "sum(rate(x[5m])"),
    );
    write(
        dir.path(),
        "c-unknown-tenant.yaml",
        &STAGE_RULE
            .replace("app-alerts", "other")
            .replace("tenant: stage", "tenant: qa"),
    );
    write(
        dir.path(),
        "d-typo.yaml",
        "tenant: prod\ngroups:\n  - name: g\n    rules:\n      - alert: A\n        exprr: up\n",
    );
    let rs = load("", dir.path()).unwrap().rules_sync.unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains("b-bad-expr.yaml: spec.groups[0].rules[0].expr: invalid PromQL"),
        "{all}"
    );
    assert!(
        all.contains("c-unknown-tenant.yaml: metadata.labels.tenant: tenant \"qa\" does not exist"),
        "{all}"
    );
    assert!(
        all.contains("d-typo.yaml: groups[0].rules[0]: unknown field `exprr`"),
        "{all}"
    );
    // The good file loaded; the namespaces of the bad ones are kept from
    // deletion; the typo'd file could not be read far enough to tell its
    // namespace, so deletions are held.
    let stage = rs.rulers.iter().find(|r| r.label() == "stage").unwrap();
    assert_eq!(stage.namespaces.len(), 1);
    assert!(rs.keep.contains("lgtm-webapp-broken"));
    assert!(rs.keep.contains("lgtm-webapp-other"));
    assert_eq!(
        rs.hold_deletes.as_deref(),
        Some(dir.path().join("d-typo.yaml").to_str().unwrap())
    );
}

#[test]
fn the_same_namespace_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", STAGE_RULE);
    write(
        dir.path(),
        "b.yaml",
        &format!("{STAGE_RULE}\n---\n{STAGE_RULE}"),
    );
    let rs = load("", dir.path()).unwrap().rules_sync.unwrap();
    assert_eq!(rs.problems.len(), 2, "{:?}", rs.problems);
    assert!(rs.problems[0].contains(
        "b.yaml (document 1): ruler namespace lgtm-webapp-app-alerts is also written by"
    ));
    assert!(rs.keep.contains("lgtm-webapp-app-alerts"));
}

#[test]
fn config_problems_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = load("interval = \"soon\"\nnamespace_prefix = \"\"\n", dir.path()).unwrap_err();
    let all = e.0.join("\n");
    assert!(all.contains("rules_sync.interval:"), "{all}");
    assert!(all.contains("rules_sync.namespace_prefix:"), "{all}");
    let e = load("", &dir.path().join("missing")).unwrap_err();
    assert!(
        e.0.join("\n").contains("rules_sync.dir: cannot read"),
        "{e:?}"
    );
    let toml = format!(
        "[rules_sync]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let e = layer(Some(&toml), Vec::new())
        .and_then(validate)
        .unwrap_err();
    assert!(
        e.0.join("\n")
            .contains("rules_sync: no tenant has a prometheus upstream"),
        "{e:?}"
    );
}

#[test]
fn other_documents_and_shapes_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    write(
        dir.path(),
        "nometa.yaml",
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec: {groups: []}\n",
    );
    write(dir.path(), "plain.yaml", "tenant: stage\n");
    let rs = load("", dir.path()).unwrap().rules_sync.unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains("cm.yaml: apiVersion/kind: expected monitoring.coreos.com/v1 PrometheusRule"),
        "{all}"
    );
    assert!(all.contains("nometa.yaml: metadata.name: missing"), "{all}");
    assert!(all.contains("plain.yaml: groups: missing"), "{all}");
    assert!(rs.keep.contains("lgtm-plain"));
}
