use super::*;

fn raw_group(yaml: &str) -> RawGroup {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn problems_of(yaml: &str) -> Vec<String> {
    problems_for(yaml, RulerKind::Mimir)
}

fn problems_for(yaml: &str, kind: RulerKind) -> Vec<String> {
    let mut p = Vec::new();
    let g = check_group(&raw_group(yaml), kind, "groups[0]", &mut p);
    assert_eq!(g.is_none(), !p.is_empty());
    p
}

#[test]
fn durations_parse_and_print_as_prometheus_does() {
    for (text, ms, shown) in [
        ("0", 0, "0s"),
        ("30s", 30_000, "30s"),
        ("5m", 300_000, "5m"),
        ("90s", 90_000, "1m30s"),
        ("1h30m", 5_400_000, "1h30m"),
        ("2w", 14 * 86_400_000, "2w"),
        // Weeks and years only when exact.
        ("15d", 15 * 86_400_000, "15d"),
        ("1y", 365 * 86_400_000, "1y"),
        ("1500ms", 1500, "1s500ms"),
        ("1m500ms", 60_500, "1m500ms"),
    ] {
        let d = PromDuration::parse(text).unwrap();
        assert_eq!(d.0, ms, "{text}");
        assert_eq!(d.to_string(), shown, "{text}");
        assert_eq!(PromDuration::parse(shown).unwrap(), d);
    }
    for bad in [
        "",
        "5",
        "m",
        "5x",
        "1m1h",
        "1h1h",
        "-5m",
        "1.5h",
        "1.5",
        " 5m",
        "99999999999999999999y",
    ] {
        assert!(PromDuration::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_valid_group_becomes_the_canonical_form() {
    let mut p = Vec::new();
    let g = check_group(
        &raw_group(
            r#"
name: app
interval: 60s
rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: 300s
    keep_firing_for: 0s
    labels: {severity: critical, tier: 1}
    annotations: {summary: "{{ $labels.job }} is down"}
"#,
        ),
        RulerKind::Mimir,
        "groups[0]",
        &mut p,
    )
    .unwrap();
    assert!(p.is_empty());
    assert_eq!(g.interval, Some(PromDuration(60_000)));
    assert_eq!(g.rules[1].for_, Some(PromDuration(300_000)));
    assert_eq!(g.rules[1].keep_firing_for, None, "zero is unset");
    assert_eq!(g.rules[1].labels["tier"], "1");
    let yaml = g.to_yaml();
    assert!(yaml.contains("interval: 1m\n"), "{yaml}");
    assert!(yaml.contains("for: 5m\n"), "{yaml}");
    assert!(!yaml.contains("keep_firing_for"), "{yaml}");
    // What a ruler returns compares equal to what was sent.
    let back: Group = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back.normalized(), g);
}

#[test]
fn every_problem_names_its_field() {
    let p = problems_of(
        r#"
name: ""
interval: 1 minute
rules:
  - record: "bad name"
    expr: sum(
    for: 5m
  - alert: A
    record: b
    expr: up
  - alert: B
  - alert: C
    expr: up
    labels: {"bad-label": x, __name__: y}
    annotations: {summary: "{{ $value"}
"#,
    );
    let joined = p.join("\n");
    for needle in [
        "groups[0].name: must not be empty",
        "groups[0].interval: \"1 minute\" is not a Prometheus duration",
        "groups[0].rules[0].record: \"bad name\" is not a valid metric name",
        "groups[0].rules[0].expr: invalid PromQL",
        "groups[0].rules[0].for: not allowed in a recording rule",
        "groups[0].rules[1].record: only one of record and alert",
        "groups[0].rules[2].expr: must be set",
        "groups[0].rules[3].labels.bad-label: not a valid label name",
        "groups[0].rules[3].labels.__name__: not a valid label name",
        "groups[0].rules[3].annotations.summary: unclosed template action",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}

#[test]
fn duplicate_group_names_are_reported() {
    let g = |n: &str| Group {
        name: n.into(),
        interval: None,
        query_offset: None,
        limit: 0,
        source_tenants: vec![],
        rules: vec![],
    };
    let mut p = Vec::new();
    check_unique_names(&[g("a"), g("b"), g("a")], "spec.groups", &mut p);
    assert_eq!(p, ["spec.groups[2].name: group \"a\" is defined twice"]);
}

#[test]
fn templates_must_close() {
    assert!(templates_closed("plain"));
    assert!(templates_closed("{{ $labels.a }} and {{ $value }}"));
    assert!(templates_closed("a }} b"));
    assert!(!templates_closed("{{ $labels.a"));
    assert!(!templates_closed("{{ a }} {{ b"));
}

#[test]
fn loki_groups_are_checked_for_structure_and_leave_logql_to_the_ruler() {
    let logql = r#"
name: errors
interval: 1m
rules:
  - alert: ManyErrors
    expr: sum by (app) (rate({namespace="shop"} |= "error" [5m])) > 10
    for: 5m
    labels: {severity: warning}
  - record: app:log_lines:rate5m
    expr: sum by (app) (rate({namespace="shop"}[5m]))
"#;
    assert!(problems_for(logql, RulerKind::Loki).is_empty());
    // The same LogQL is no PromQL: a Mimir file with it is refused.
    let p = problems_of(logql);
    assert!(p.iter().any(|p| p.contains("invalid PromQL")), "{p:?}");
    // Structure is still checked for Loki.
    let p = problems_for(
        "name: x\nrules:\n  - record: bad name\n    expr: x\n  - alert: A\n    for: 5x\n    expr: y\n",
        RulerKind::Loki,
    );
    assert!(p.iter().any(|p| p.contains("rules[0].record")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("rules[1].for")), "{p:?}");
    let p = problems_for(
        "name: x\nsource_tenants: [a]\nrules:\n  - alert: A\n    expr: y\n",
        RulerKind::Loki,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("groups[0].source_tenants:"), "{p:?}");
    let p = problems_for("name: x\nrules:\n  - alert: A\n", RulerKind::Loki);
    assert!(
        p.iter().any(|p| p.contains("rules[0].expr: must be set")),
        "{p:?}"
    );
}
