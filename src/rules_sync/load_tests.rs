use std::path::Path;

use crate::config::{layer, validate, Config, ConfigErrors};

/// Two tenants with their own stacks; no top-level prometheus.
const TENANTS: &str = r#"
[tenants.stage]
namespaces = ["webapp", "shared"]
[tenants.stage.upstreams.prometheus]
url = "https://stage.example"
user = "111"
token = "stage-token"
[tenants.prod]
namespaces = ["payments", "shared"]
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
    let rs = c.rules_sync.as_ref().unwrap();
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
        .dynamic
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
    let rs = load("", dir.path()).unwrap().dynamic.rules_sync.unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains("b-bad-expr.yaml: spec.groups[0].rules[0].expr: invalid PromQL"),
        "{all}"
    );
    assert!(
        all.contains("c-unknown-tenant.yaml: metadata.labels.tenant: names tenant \"qa\", but namespace webapp may act only for stage"),
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
    let rs = load("", dir.path()).unwrap().dynamic.rules_sync.unwrap();
    assert_eq!(rs.problems.len(), 2, "{:?}", rs.problems);
    assert!(rs.problems[0].contains(
        "b.yaml (document 1): ruler namespace lgtm-webapp-app-alerts is also written by"
    ));
    assert!(rs.keep.contains("lgtm-webapp-app-alerts"));
    // Neither is applied: not the first file either.
    assert!(rs.rulers.iter().all(|r| r.namespaces.is_empty()));
}

/// `<ns>-<name>` can collide across Kubernetes namespaces (`a-b`/`c` and
/// `a`/`b-c`): one team's file must never replace another's groups, so
/// both are refused; and a valid file sharing a namespace with a refused
/// one is not applied either, in whichever order they load.
#[test]
fn colliding_ruler_namespaces_are_both_refused_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |ns: &str, name: &str| {
        STAGE_RULE
            .replace("namespace: webapp", &format!("namespace: {ns}"))
            .replace("app-alerts", name)
            .replace("tenant: stage", "tenant: default")
    };
    write(dir.path(), "a.yaml", &rule("team-a", "x-rules"));
    write(dir.path(), "b.yaml", &rule("team-a-x", "rules"));
    let broken = rule("team-c", "y").replace(r#"up{job="app"} == 0"#, "sum(");
    for (first, second) in [("c1.yaml", "c2.yaml"), ("c2.yaml", "c1.yaml")] {
        let _ = std::fs::remove_file(dir.path().join("c1.yaml"));
        let _ = std::fs::remove_file(dir.path().join("c2.yaml"));
        write(dir.path(), first, &broken);
        write(dir.path(), second, &rule("team-c", "y"));
        let toml = format!(
            "[upstreams.prometheus]\nurl = \"https://one.example\"\nuser = \"1\"\ntoken = \"t\"\n[rules_sync]\ndir = {:?}\n",
            dir.path().display().to_string()
        );
        let rs = layer(Some(&toml), Vec::new())
            .and_then(validate)
            .unwrap()
            .dynamic
            .rules_sync
            .unwrap();
        let all = rs.problems.join("\n");
        assert!(
            all.contains("ruler namespace lgtm-team-a-x-rules is also written by"),
            "{all}"
        );
        assert!(all.contains("lgtm-team-c-y"), "{all}");
        assert!(
            rs.rulers.iter().all(|r| r.namespaces.is_empty()),
            "{:?}",
            rs.rulers
        );
        assert!(rs.keep.contains("lgtm-team-a-x-rules") && rs.keep.contains("lgtm-team-c-y"));
    }
}

/// A PrometheusRule's `tenant` label selects a ruler only among the tenants
/// its namespace may act for; a namespace listed by two acts for the one it
/// names; unlisted namespaces reach the default tenant's ruler only.
#[test]
fn a_prometheus_rule_acts_only_for_its_namespaces_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |ns: &str, name: &str, tenant: &str| {
        STAGE_RULE
            .replace("namespace: webapp", &format!("namespace: {ns}"))
            .replace("app-alerts", name)
            .replace("tenant: stage", &format!("tenant: {tenant}"))
    };
    write(dir.path(), "cross.yaml", &rule("webapp", "steal", "prod"));
    write(
        dir.path(),
        "shared-prod.yaml",
        &rule("shared", "ok", "prod"),
    );
    write(dir.path(), "stranger.yaml", &rule("team-z", "z", "stage"));
    let rs = load("", dir.path()).unwrap().dynamic.rules_sync.unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains("cross.yaml: metadata.labels.tenant: names tenant \"prod\", but namespace webapp may act only for stage"),
        "{all}"
    );
    assert!(
        all.contains("stranger.yaml: metadata.labels.tenant: names tenant \"stage\", but no tenant lists namespace team-z"),
        "{all}"
    );
    let by: std::collections::BTreeMap<String, Vec<String>> = rs
        .rulers
        .iter()
        .map(|r| (r.label(), r.namespaces.keys().cloned().collect()))
        .collect();
    assert_eq!(by["prod"], ["lgtm-shared-ok"]);
    assert!(by["stage"].is_empty(), "{by:?}");
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
            .contains("rules_sync: no tenant has a prometheus or loki upstream"),
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
    let rs = load("", dir.path()).unwrap().dynamic.rules_sync.unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains("cm.yaml: apiVersion/kind: expected monitoring.coreos.com/v1 PrometheusRule"),
        "{all}"
    );
    assert!(all.contains("nometa.yaml: metadata.name: missing"), "{all}");
    assert!(all.contains("plain.yaml: groups: missing"), "{all}");
    assert!(rs.keep.contains("lgtm-plain"));
}

#[test]
fn a_file_names_its_ruler_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // stage has a loki upstream too; prod has none.
    let extra_tenants = "[tenants.stage.upstreams.loki]\nurl = \"https://logs.example\"\nuser = \"l1\"\ntoken = \"t\"\n";
    let group = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'count_over_time({a=\"b\"}[1m]) > 0'\n";
    write(
        dir.path(),
        "stage-logs.yaml",
        &format!("tenant: stage\nruler: loki\n{group}"),
    );
    write(
        dir.path(),
        "prod-logs.yaml",
        &format!("tenant: prod\nruler: loki\n{group}"),
    );
    write(
        dir.path(),
        "odd.yaml",
        &format!("tenant: stage\nruler: Loki\n{group}"),
    );
    write(
        dir.path(),
        "both.yaml",
        &STAGE_RULE.replace("spec:\n", "ruler: loki\nspec:\n"),
    );
    let toml = format!(
        "{TENANTS}\n{extra_tenants}\n[rules_sync]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let c = layer(Some(&toml), Vec::new()).and_then(validate).unwrap();
    let rs = c.rules_sync.as_ref().unwrap();
    let all = rs.problems.join("\n");
    assert!(
        all.contains(
            "prod-logs.yaml: tenant: tenant \"prod\" does not exist or has no loki upstream"
        ),
        "{all}"
    );
    assert!(
        all.contains("odd.yaml: ruler: \"Loki\" is not a ruler (mimir or loki)"),
        "{all}"
    );
    assert!(all.contains("both.yaml: groups/tenant/ruler:"), "{all}");
    assert_eq!(rs.problems.len(), 3, "{all}");
    let loki: Vec<_> = rs
        .rulers
        .iter()
        .filter(|r| r.kind == super::RulerKind::Loki)
        .collect();
    assert_eq!(loki.len(), 1);
    assert_eq!(loki[0].status_key(), "stage/loki");
    assert_eq!(
        loki[0].namespaces.keys().collect::<Vec<_>>(),
        ["lgtm-stage-logs"]
    );
    // The LogQL group went to Loki's ruler only.
    assert!(rs
        .rulers
        .iter()
        .filter(|r| r.kind == super::RulerKind::Mimir)
        .all(|r| r.namespaces.is_empty()));
}
