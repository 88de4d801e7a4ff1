//! Rule groups in the one form the proxy sends and compares: what a ruler
//! stores (Mimir's `rulefmt.RuleGroup`), with durations in Prometheus'
//! notation and zero values left out as the ruler leaves them out.
//! `check_group` turns a group as written into this form or names every
//! problem with its field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::kind::RulerKind;
use super::raw::{RawGroup, RawRule, Scalar};
use crate::remote_write::selector::valid_label_name;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_offset: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_tenants: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Group {
    /// As a ruler returns it: zero durations mean "unset" (the ruler omits
    /// them), so they compare equal to absent ones.
    pub fn normalized(mut self) -> Self {
        let unset_zero = |d: &mut Option<PromDuration>| {
            if d.is_some_and(|d| d.0 == 0) {
                *d = None;
            }
        };
        unset_zero(&mut self.interval);
        unset_zero(&mut self.query_offset);
        for r in &mut self.rules {
            unset_zero(&mut r.for_);
            unset_zero(&mut r.keep_firing_for);
        }
        self
    }

    /// The YAML body of a POST to the ruler (one group, as mimirtool sends).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a rule group serializes")
    }
}

/// A Prometheus duration (`model.Duration`), in milliseconds.
///
/// Parsed here, rendered by promql-parser: `promql_parser::util::parse_duration`
/// reads PromQL's duration literals, which are not the rule file's
/// `model.Duration` (it takes `1.5` and `5` as seconds and refuses `0` and
/// `0s`, all of which the ruler answers the other way), so a rule file
/// checked with it would pass here and fail at the ruler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromDuration(pub u64);

/// The text is not a Prometheus duration (or one too long to hold).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Prometheus duration like \"30s\", \"5m\" or \"1h30m\"")]
pub struct DurationError(pub String);

const UNITS: &[(&str, u64)] = &[
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

impl PromDuration {
    /// Prometheus' syntax: `0`, or units y w d h m s ms in that order, each
    /// at most once (`1h30m`, `90s`, `2w`).
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let bad = || DurationError(s.to_string());
        if s == "0" {
            return Ok(PromDuration(0));
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            // "ms" before "m": the longest unit name that matches.
            let (i, (unit, mult)) = UNITS
                .iter()
                .enumerate()
                .skip(next_unit)
                .filter(|(_, (u, _))| rest.starts_with(u))
                .max_by_key(|(_, (u, _))| u.len())
                .ok_or_else(bad)?;
            rest = &rest[unit.len()..];
            next_unit = i + 1;
            total = n
                .checked_mul(*mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        if s.is_empty() {
            return Err(bad());
        }
        Ok(PromDuration(total))
    }
}

/// Prometheus' own rendering (years and weeks only when exact).
impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = std::time::Duration::from_millis(self.0);
        f.write_str(&promql_parser::util::display_duration(&d))
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PromDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every `{{` is closed by a later `}}` (Go templates fail on an unclosed
/// action; the ruler parses the templates in full).
fn templates_closed(s: &str) -> bool {
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        match rest[open + 2..].find("}}") {
            Some(close) => rest = &rest[open + 2 + close + 2..],
            None => return false,
        }
    }
    true
}

/// Check one group as written at `at` (e.g. `spec.groups[0]`). Problems
/// are `field: message`, the field under `at`.
/// Loki's groups are checked for structure only: LogQL is left to the
/// ruler, whose refusal is reported.
pub fn check_group(
    raw: &RawGroup,
    kind: RulerKind,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Group> {
    let before = problems.len();
    let mut add = |field: String, msg: String| problems.push(format!("{at}.{field}: {msg}"));
    if raw.name.trim().is_empty() {
        add("name".into(), "must not be empty".into());
    }
    if kind == RulerKind::Loki && raw.source_tenants.is_some() {
        add(
            "source_tenants".into(),
            "Mimir only (federated rule groups); the Loki ruler has none".into(),
        );
    }
    let mut duration = |field: &str, v: &Option<String>| {
        v.as_deref().and_then(|s| {
            PromDuration::parse(s)
                .map_err(|e| add(field.to_string(), e.to_string()))
                .ok()
        })
    };
    let interval = duration("interval", &raw.interval);
    let query_offset = duration("query_offset", &raw.query_offset);
    let rules: Vec<Rule> = raw
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| check_rule(r, kind, &format!("{at}.rules[{i}]"), problems))
        .collect();
    (problems.len() == before).then(|| {
        Group {
            name: raw.name.clone(),
            interval,
            query_offset,
            limit: raw.limit.unwrap_or(0),
            source_tenants: raw.source_tenants.clone().unwrap_or_default(),
            rules,
        }
        .normalized()
    })
}

fn check_rule(
    raw: &RawRule,
    kind: RulerKind,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Rule> {
    let before = problems.len();
    let mut add = |field: &str, msg: String| problems.push(format!("{at}.{field}: {msg}"));
    match (&raw.record, &raw.alert) {
        (Some(_), Some(_)) => add("record", "only one of record and alert may be set".into()),
        (None, None) => add("record", "one of record or alert must be set".into()),
        (Some(r), None) if !valid_metric_name(r) => {
            add("record", format!("{r:?} is not a valid metric name"))
        }
        (None, Some(a)) if a.trim().is_empty() => add("alert", "must not be empty".into()),
        _ => {}
    }
    let expr = raw.expr.as_ref().map(|e| e.0.clone()).unwrap_or_default();
    if expr.trim().is_empty() {
        add("expr", "must be set".into());
    } else if kind == RulerKind::Mimir {
        if let Err(e) = promql_parser::parser::parse(&expr) {
            add("expr", format!("invalid PromQL: {}", e.trim()));
        }
    }
    let mut duration = |field: &str, v: &Option<String>| {
        v.as_deref().and_then(|s| {
            PromDuration::parse(s)
                .map_err(|e| add(field, e.to_string()))
                .ok()
        })
    };
    let for_ = duration("for", &raw.for_);
    let keep_firing_for = duration("keep_firing_for", &raw.keep_firing_for);
    if raw.record.is_some() {
        for (field, set) in [
            ("for", raw.for_.is_some()),
            ("keep_firing_for", raw.keep_firing_for.is_some()),
            ("annotations", !raw.annotations.is_empty()),
        ] {
            if set {
                add(field, "not allowed in a recording rule".into());
            }
        }
    }
    let labels = check_map(&raw.labels, "labels", &mut add, true);
    let annotations = check_map(&raw.annotations, "annotations", &mut add, false);
    (problems.len() == before).then(|| Rule {
        record: raw.record.clone(),
        alert: raw.alert.clone(),
        expr,
        for_,
        keep_firing_for,
        labels,
        annotations,
    })
}

fn check_map(
    map: &BTreeMap<String, Scalar>,
    field: &str,
    add: &mut impl FnMut(&str, String),
    labels: bool,
) -> BTreeMap<String, String> {
    for (k, v) in map {
        if !valid_label_name(k) || (labels && k == "__name__") {
            add(&format!("{field}.{k}"), "not a valid label name".into());
        }
        if !templates_closed(&v.0) {
            add(
                &format!("{field}.{k}"),
                "unclosed template action ({{ without }})".into(),
            );
        }
    }
    map.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Group names must be unique within one ruler namespace.
pub fn check_unique_names(groups: &[Group], at: &str, problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        if !seen.insert(g.name.as_str()) {
            problems.push(format!(
                "{at}[{i}].name: group {:?} is defined twice",
                g.name
            ));
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
