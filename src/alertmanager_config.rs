//! `lgtm-proxy alertmanager-config push`: an Alertmanager configuration
//! (routes, receivers, inhibit rules, as in seed 002) checked here, then
//! POSTed to a tenant's Alertmanager configuration API (Mimir's
//! `/api/v1/alerts`, YAML `alertmanager_config` + `template_files`) with
//! that tenant's credentials. The checks are structural (what Alertmanager
//! would refuse to load); the integrations' own settings are the
//! Alertmanager's to check.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::config::Upstream;
use crate::proxy::own_api::{ApiError, UpstreamApi};
use crate::proxy::ClientSet;
use crate::remote_write::selector::valid_label_name;
use crate::rules_sync::group::PromDuration;

/// The configuration API under the alertmanager upstream's URL.
pub const CONFIG_PATH: &str = "/api/v1/alerts";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmConfig {
    /// Type-checked only (unread fields start with `_`).
    #[serde(rename = "global")]
    _global: Option<BTreeMap<String, Value>>,
    route: Option<Route>,
    #[serde(default)]
    receivers: Vec<Receiver>,
    #[serde(default)]
    inhibit_rules: Vec<InhibitRule>,
    #[serde(default, rename = "templates")]
    _templates: Vec<String>,
    #[serde(default)]
    time_intervals: Vec<NamedInterval>,
    #[serde(default)]
    mute_time_intervals: Vec<NamedInterval>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    #[serde(rename = "continue")]
    _continue: Option<bool>,
    #[serde(rename = "match")]
    match_: Option<BTreeMap<String, String>>,
    match_re: Option<BTreeMap<String, String>>,
    #[serde(default)]
    matchers: Vec<String>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    mute_time_intervals: Vec<String>,
    #[serde(default)]
    active_time_intervals: Vec<String>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct Receiver {
    name: String,
    /// `slack_configs`, `pagerduty_configs`, ...
    #[serde(flatten)]
    integrations: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitRule {
    source_match: Option<BTreeMap<String, String>>,
    source_match_re: Option<BTreeMap<String, String>>,
    #[serde(default)]
    source_matchers: Vec<String>,
    target_match: Option<BTreeMap<String, String>>,
    target_match_re: Option<BTreeMap<String, String>>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    equal: Vec<String>,
}

#[derive(Deserialize)]
struct NamedInterval {
    name: String,
}

/// Mimir's configuration body (also accepted as input).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimirBody {
    #[serde(default)]
    pub template_files: BTreeMap<String, String>,
    pub alertmanager_config: String,
}

const INTEGRATIONS: &[&str] = &[
    "discord_configs",
    "email_configs",
    "msteams_configs",
    "opsgenie_configs",
    "pagerduty_configs",
    "pushover_configs",
    "slack_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "webhook_configs",
    "wechat_configs",
];

/// Read a configuration (plain, or Mimir's body) and the named template
/// files into the body to POST; every problem named by its field.
pub fn prepare(text: &str, templates: BTreeMap<String, String>) -> Result<MimirBody, Vec<String>> {
    let mut body = match crate::yaml_dir::from_str::<MimirBody>(text) {
        Ok(b) => b,
        Err(_) => MimirBody {
            template_files: BTreeMap::new(),
            alertmanager_config: text.to_string(),
        },
    };
    body.template_files.extend(templates);
    check(&body.alertmanager_config)?;
    Ok(body)
}

/// Check an Alertmanager configuration as Alertmanager would load it.
pub fn check(text: &str) -> Result<(), Vec<String>> {
    let c: AmConfig = crate::yaml_dir::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut p = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in c.receivers.iter().enumerate() {
        if r.name.is_empty() {
            p.push(format!("receivers[{i}].name: must not be empty"));
        } else if !names.insert(r.name.as_str()) {
            p.push(format!(
                "receivers[{i}].name: receiver {:?} is defined twice",
                r.name
            ));
        }
        for k in r.integrations.keys() {
            if !INTEGRATIONS.contains(&k.as_str()) {
                p.push(format!("receivers[{i}].{k}: not a receiver integration"));
            }
        }
    }
    let intervals: BTreeSet<&str> = c
        .time_intervals
        .iter()
        .chain(&c.mute_time_intervals)
        .map(|t| t.name.as_str())
        .collect();
    match &c.route {
        None => p.push("route: missing (the root route)".into()),
        Some(root) => {
            if root.receiver.is_none() {
                p.push("route.receiver: the root route needs a receiver".into());
            }
            if !root.matchers.is_empty() || root.match_.is_some() || root.match_re.is_some() {
                p.push("route: the root route must not have matchers".into());
            }
            check_route(root, "route", &names, &intervals, &mut p);
        }
    }
    for (i, r) in c.inhibit_rules.iter().enumerate() {
        let at = format!("inhibit_rules[{i}]");
        if r.source_match.is_none() && r.source_match_re.is_none() && r.source_matchers.is_empty() {
            p.push(format!("{at}: needs source_matchers"));
        }
        if r.target_match.is_none() && r.target_match_re.is_none() && r.target_matchers.is_empty() {
            p.push(format!("{at}: needs target_matchers"));
        }
        for (field, list) in [
            ("source_matchers", &r.source_matchers),
            ("target_matchers", &r.target_matchers),
        ] {
            check_matchers(list, &format!("{at}.{field}"), &mut p);
        }
        for (j, l) in r.equal.iter().enumerate() {
            if !valid_label_name(l) {
                p.push(format!("{at}.equal[{j}]: {l:?} is not a label name"));
            }
        }
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(p)
    }
}

fn check_route(
    r: &Route,
    at: &str,
    receivers: &BTreeSet<&str>,
    intervals: &BTreeSet<&str>,
    p: &mut Vec<String>,
) {
    if let Some(name) = &r.receiver {
        if !receivers.contains(name.as_str()) {
            p.push(format!("{at}.receiver: receiver {name:?} is not defined"));
        }
    }
    for (i, l) in r.group_by.iter().flatten().enumerate() {
        if l != "..." && !valid_label_name(l) {
            p.push(format!("{at}.group_by[{i}]: {l:?} is not a label name"));
        }
    }
    for (field, v) in [
        ("group_wait", &r.group_wait),
        ("group_interval", &r.group_interval),
        ("repeat_interval", &r.repeat_interval),
    ] {
        if let Some(Err(e)) = v.as_deref().map(PromDuration::parse) {
            p.push(format!("{at}.{field}: {e}"));
        }
    }
    for (field, list) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for (i, name) in list.iter().enumerate() {
            if !intervals.contains(name.as_str()) {
                p.push(format!(
                    "{at}.{field}[{i}]: time interval {name:?} is not defined"
                ));
            }
        }
    }
    for (k, _) in r.match_.iter().chain(&r.match_re).flatten() {
        if !valid_label_name(k) {
            p.push(format!("{at}.match.{k}: not a label name"));
        }
    }
    check_matchers(&r.matchers, &format!("{at}.matchers"), p);
    for (i, child) in r.routes.iter().enumerate() {
        check_route(child, &format!("{at}.routes[{i}]"), receivers, intervals, p);
    }
}

/// `label op value` with op one of `=`, `!=`, `=~`, `!~`; the value may be
/// quoted.
fn check_matchers(list: &[String], at: &str, p: &mut Vec<String>) {
    for (i, m) in list.iter().enumerate() {
        let m = m.trim();
        let name_end = m
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(m.len());
        let (name, rest) = m.split_at(name_end);
        let rest = rest.trim_start();
        let op_ok = ["=~", "!~", "!=", "="]
            .iter()
            .any(|op| rest.starts_with(op));
        if !valid_label_name(name) || !op_ok {
            p.push(format!(
                "{at}[{i}]: {m:?} is not a matcher like severity=\"critical\""
            ));
        }
    }
}

/// POST the body to the tenant's Alertmanager configuration API; `Ok`
/// says what answered.
pub async fn push(
    clients: &mut ClientSet,
    up: &Upstream,
    body: &MimirBody,
) -> Result<String, ApiError> {
    let api = UpstreamApi::new(clients, up, CONFIG_PATH);
    let url = api.url().to_string();
    // The body is built from strings and maps: it always serializes.
    let yaml = serde_yaml_ng::to_string(body).map_err(|e| ApiError::Failed {
        method: Method::POST,
        url: url.clone(),
        cause: e.to_string(),
    })?;
    match api
        .call(Method::POST, &url, Some(Bytes::from(yaml)), 64 * 1024)
        .await?
    {
        (s, _) if s.is_success() => Ok(format!("{s} from {url}")),
        (s, answer) => Err(ApiError::refused(Method::POST, &url, s, &answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_002: &str = r##"
route:
  receiver: prod-default
  group_by: [alertname, cluster]
  routes:
    - matchers: ['severity="critical"']
      receiver: prod-pagerduty
      continue: true
    - receiver: prod-slack
receivers:
  - name: prod-default
  - name: prod-pagerduty
    pagerduty_configs: [{routing_key: x}]
  - name: prod-slack
    slack_configs: [{api_url: "https://hooks.slack.com/x", channel: "#prod"}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, cluster]
"##;

    #[test]
    fn the_seed_routing_is_valid_and_wrapped_for_mimir() {
        let body = prepare(SEED_002, [("t.tmpl".to_string(), "x".to_string())].into()).unwrap();
        assert_eq!(body.alertmanager_config, SEED_002);
        assert_eq!(body.template_files["t.tmpl"], "x");
        // Mimir's own body is taken as it is.
        let yaml = serde_yaml_ng::to_string(&body).unwrap();
        let again = prepare(&yaml, BTreeMap::new()).unwrap();
        assert_eq!(again.alertmanager_config, SEED_002);
    }

    #[test]
    fn problems_name_their_field() {
        let bad = SEED_002
            .replace("receiver: prod-slack", "receiver: prod-sms")
            .replace(
                "group_by: [alertname, cluster]",
                "group_by: [alert-name]\n  group_wait: soon",
            )
            .replace("pagerduty_configs", "pager_configs")
            .replace(
                "target_matchers: [severity=\"warning\"]",
                "target_matchers: [\"severity is warning\"]",
            );
        let p = check(&bad).unwrap_err().join("\n");
        for needle in [
            "route.routes[1].receiver: receiver \"prod-sms\" is not defined",
            "route.group_by[0]: \"alert-name\" is not a label name",
            "route.group_wait: \"soon\" is not a Prometheus duration",
            "receivers[1].pager_configs: not a receiver integration",
            "inhibit_rules[0].target_matchers[0]:",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in\n{p}");
        }
        let p = check("receivers: [{name: a}, {name: a}]\n")
            .unwrap_err()
            .join("\n");
        assert!(
            p.contains("route: missing") && p.contains("defined twice"),
            "{p}"
        );
        let p = check("route: {receiver: a}\nreceiver: []\n")
            .unwrap_err()
            .join("\n");
        assert!(p.contains("unknown field `receiver`"), "{p}");
    }
}
