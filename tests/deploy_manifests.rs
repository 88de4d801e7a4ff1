//! The Kubernetes manifests as a cluster receives them: `kubectl kustomize`
//! renders the base and both overlays; the rendered objects pass
//! Kubernetes' own schemas in strict mode (kubernetes-validate, offline);
//! and the wiring a schema can't see holds: selectors select the pods,
//! named ports exist, the ServiceMonitor scrapes a real Service port, the
//! PrometheusRule is well formed with runbooks, every file the proxy is
//! told to read (LGTM_CONFIG, LGTM_*_FILE, the TOML's `token_file`s and
//! directories) is provided by a mounted ConfigMap or a Secret of the
//! overlay's example, and the grace period covers preStop + drain. Each
//! check is also shown to fail on a manifest broken on purpose.

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Each rendered directory and the example Secret file that documents the
/// Secrets it expects the user to create.
const LAYOUTS: [(&str, &str); 3] = [
    ("base", "base/secret.example.yaml"),
    ("overlays/single-stack", "base/secret.example.yaml"),
    (
        "overlays/multi-tenant",
        "overlays/multi-tenant/secrets.example.yaml",
    ),
];

/// Kubernetes versions to validate against: the oldest the manifests need
/// (`lifecycle.preStop.sleep` is 1.30) and the newest schemas shipped.
const KUBE_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn kustomize_dir(dir: &str) -> PathBuf {
    Path::new(ROOT).join("deploy/kustomize").join(dir)
}

fn render(dir: &str) -> Vec<Value> {
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(kustomize_dir(dir))
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "kubectl is needed to render deploy/kustomize ({e}); it is part of the \
             machine image (kubectl >= 1.27 with its built-in kustomize)"
        ),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn secret_examples(file: &str) -> Vec<Value> {
    let path = Path::new(ROOT).join("deploy/kustomize").join(file);
    documents(&std::fs::read_to_string(path).unwrap())
}

fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs kubernetes-validate in strict mode; the error text on failure.
/// Only the Prometheus Operator's CRDs may lack a schema (they get the
/// structural checks below): a typo in a built-in kind's apiVersion would
/// otherwise pass as "no schema".
fn kubernetes_validate(docs: &[Value]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, to_yaml(docs)).unwrap();
    for version in KUBE_VERSIONS {
        let out = Command::new("python3")
            .args([
                "-m",
                "kubernetes_validate",
                "--strict",
                "--quiet",
                "-k",
                version,
            ])
            .arg(&path)
            .output()
            .expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains("No module named kubernetes_validate"),
            "kubernetes-validate is not installed (scripts/test.sh installs it from \
             tests/peers/requirements.txt)"
        );
        if !out.status.success() {
            return Err(format!("kubernetes {version}: {text}"));
        }
        for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
            if !line.contains("api version monitoring.coreos.com/v1") {
                return Err(format!("kubernetes {version}: {line}"));
            }
        }
    }
    Ok(())
}

// ----- navigation helpers -----

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i).unwrap_or(&Value::Null),
            Err(_) => v.get(key).unwrap_or(&Value::Null),
        })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path).as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn kinds<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| str_at(d, "kind") == kind)
}

/// A ConfigMap's data entry (keys hold dots, so not through `at`).
fn data<'a>(cm: &'a Value, key: &str) -> &'a str {
    at(cm, "data")
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

/// `selector` (a matchLabels map) is non-empty and every pair is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    match selector.as_mapping() {
        Some(m) if !m.is_empty() => m.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

fn seconds(text: &str) -> u64 {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX)
}

// ----- the wiring checks -----

/// The value of env `key` in a container, if it is set by value.
fn env_value<'a>(container: &'a Value, key: &str) -> Option<&'a str> {
    seq(container, "env")
        .iter()
        .find(|e| str_at(e, "name") == key)
        .map(|e| str_at(e, "value"))
}

/// A Deployment's `--role` as its env sets it (`all` when unset).
fn role_of(deployment: &Value) -> &str {
    env_value(first_container(deployment), "LGTM_ROLE").unwrap_or("all")
}

fn first_container(deployment: &Value) -> &Value {
    seq(at(deployment, "spec.template"), "spec.containers")
        .first()
        .unwrap_or(&Value::Null)
}

fn pod_labels(deployment: &Value) -> &Value {
    at(deployment, "spec.template.metadata.labels")
}

fn container_ports(deployment: &Value) -> BTreeSet<&str> {
    seq(first_container(deployment), "ports")
        .iter()
        .map(|p| str_at(p, "name"))
        .collect()
}

/// Every problem found in one rendered layout, each naming the object and
/// field.
fn wiring_problems(docs: &[Value], secrets: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let deployments: Vec<&Value> = kinds(docs, "Deployment").collect();
    let of_role = |role: &str| -> Vec<&Value> {
        deployments
            .iter()
            .copied()
            .filter(|d| role_of(d) == role)
            .collect()
    };
    let (serving, jobs) = (of_role("proxy"), of_role("jobs"));
    let ([serving], [jobs]) = (serving.as_slice(), jobs.as_slice()) else {
        return vec![format!(
            "{} Deployments with LGTM_ROLE proxy and {} with jobs, want one of each (of {})",
            serving.len(),
            jobs.len(),
            deployments.len()
        )];
    };
    if deployments.len() != 2 {
        problems.push(format!("{} Deployments, want 2", deployments.len()));
    }
    for d in [serving, jobs] {
        problems.extend(deployment_problems(docs, d, secrets));
    }
    // Neither Deployment's selector takes the other's pods.
    for (a, b) in [(serving, jobs), (jobs, serving)] {
        if selects(at(a, "spec.selector.matchLabels"), pod_labels(b)) {
            problems.push(format!(
                "Deployment {}: spec.selector.matchLabels selects the pods of {}",
                name(a),
                name(b)
            ));
        }
    }
    // The jobs Deployment: one writer, even during a rollout, no clients,
    // the same ConfigMaps and Secrets as the serving one.
    let id = format!("Deployment {}", name(jobs));
    if at(jobs, "spec.replicas").as_u64() != Some(1) {
        problems.push(format!("{id}: spec.replicas is not 1"));
    }
    if str_at(jobs, "spec.strategy.type") != "Recreate" {
        problems.push(format!("{id}: spec.strategy.type is not Recreate"));
    }
    if container_ports(jobs).contains("http") {
        problems.push(format!("{id}: has the client port http"));
    }
    if comparable_pod(jobs) != comparable_pod(serving) {
        problems.push(format!(
            "{id}: spec.template.spec differs from Deployment {}'s beyond the role and the client port",
            name(serving)
        ));
    }

    // Services select the pods of one Deployment and target its container
    // ports; the client port reaches the serving pods only.
    let services: Vec<&Value> = kinds(docs, "Service").collect();
    for service in &services {
        let selector = at(service, "spec.selector");
        let Some(target) = [serving, jobs]
            .into_iter()
            .find(|d| selects(selector, pod_labels(d)))
        else {
            problems.push(format!(
                "Service {}: spec.selector selects no pod",
                name(service)
            ));
            continue;
        };
        let ports = container_ports(target);
        for port in seq(service, "spec.ports") {
            if let Some(t) = at(port, "targetPort").as_str() {
                if !ports.contains(t) {
                    problems.push(format!(
                        "Service {}: targetPort {t} is no container port",
                        name(service)
                    ));
                }
            }
            if str_at(port, "name") == "http" && selects(selector, pod_labels(jobs)) {
                problems.push(format!(
                    "Service {}: port http reaches the jobs pods",
                    name(service)
                ));
            }
        }
    }

    for v in kinds(docs, "PodDisruptionBudget") {
        let field = "spec.selector.matchLabels";
        if !selects(at(v, field), pod_labels(serving)) {
            problems.push(format!(
                "PodDisruptionBudget {}: {field} selects no pod",
                name(v)
            ));
        }
        if selects(at(v, field), pod_labels(jobs)) {
            problems.push(format!(
                "PodDisruptionBudget {}: {field} selects the jobs pod",
                name(v)
            ));
        }
    }
    for v in kinds(docs, "NetworkPolicy") {
        let field = "spec.podSelector.matchLabels";
        for d in [serving, jobs] {
            if !selects(at(v, field), pod_labels(d)) {
                problems.push(format!(
                    "NetworkPolicy {}: {field} does not select the pods of {}",
                    name(v),
                    name(d)
                ));
            }
        }
    }
    for hpa in kinds(docs, "HorizontalPodAutoscaler") {
        let target = at(hpa, "spec.scaleTargetRef");
        if str_at(target, "kind") != "Deployment" || str_at(target, "name") != name(serving) {
            problems.push(format!(
                "HorizontalPodAutoscaler {}: scaleTargetRef is not the serving Deployment",
                name(hpa)
            ));
        }
    }

    problems.extend(service_monitor_problems(docs, &services, &[serving, jobs]));
    problems.extend(prometheus_rule_problems(docs));
    problems.extend(dashboard_problems(docs));
    problems
}

/// A Deployment's pod spec without what the two roles may differ in: the
/// `LGTM_ROLE` value and the client port `http`.
fn comparable_pod(deployment: &Value) -> Value {
    let mut spec = at(deployment, "spec.template.spec").clone();
    if let Some(c) = spec["containers"][0].as_mapping_mut() {
        if let Some(ports) = c.get_mut("ports").and_then(Value::as_sequence_mut) {
            ports.retain(|p| str_at(p, "name") != "http");
        }
        if let Some(env) = c.get_mut("env").and_then(Value::as_sequence_mut) {
            env.retain(|e| str_at(e, "name") != "LGTM_ROLE");
        }
    }
    spec
}

/// One Deployment's own wiring: its selector, probes, grace period and the
/// files it is told to read.
fn deployment_problems(docs: &[Value], deployment: &Value, secrets: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let id = format!("Deployment {}", name(deployment));
    let pod = at(deployment, "spec.template");
    if !selects(
        at(deployment, "spec.selector.matchLabels"),
        pod_labels(deployment),
    ) {
        problems.push(format!(
            "{id}: spec.selector.matchLabels does not select its pods"
        ));
    }
    let container = first_container(deployment);
    let ports = container_ports(deployment);
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        let get = at(container, &format!("{probe}.httpGet"));
        if str_at(get, "path") != path {
            problems.push(format!("{id}: {probe}.httpGet.path is not {path}"));
        }
        if !ports.contains(str_at(get, "port")) {
            problems.push(format!(
                "{id}: {probe}.httpGet.port {:?} is no container port",
                at(get, "port")
            ));
        }
    }
    // Grace period > preStop sleep + shutdown delay + shutdown grace.
    let pre_stop = at(container, "lifecycle.preStop.sleep.seconds")
        .as_u64()
        .unwrap_or(0);
    let drain = seconds(env_value(container, "LGTM_SHUTDOWN_DELAY").unwrap_or("5s"))
        .saturating_add(seconds(
            env_value(container, "LGTM_SHUTDOWN_GRACE").unwrap_or("30s"),
        ));
    let grace = at(pod, "spec.terminationGracePeriodSeconds")
        .as_u64()
        .unwrap_or(30);
    if grace <= pre_stop.saturating_add(drain) {
        problems.push(format!(
            "{id}: terminationGracePeriodSeconds {grace} does not cover preStop \
             {pre_stop}s + shutdown delay and grace {drain}s"
        ));
    }
    problems.extend(file_problems(docs, pod, container, secrets));
    problems
}

/// ServiceMonitor (a CRD, no schema offline): required fields, a selector
/// that matches rendered Services' labels, endpoints on those Services'
/// named ports, and the pods of every Deployment scraped.
fn service_monitor_problems(
    docs: &[Value],
    services: &[&Value],
    deployments: &[&Value],
) -> Vec<String> {
    let mut problems = Vec::new();
    let monitors: Vec<&Value> = kinds(docs, "ServiceMonitor").collect();
    if monitors.is_empty() {
        problems.push("no ServiceMonitor".into());
    }
    for sm in monitors {
        let id = format!("ServiceMonitor {}", name(sm));
        if str_at(sm, "apiVersion") != "monitoring.coreos.com/v1" || name(sm).is_empty() {
            problems.push(format!("{id}: apiVersion or metadata.name"));
        }
        let selector = at(sm, "spec.selector.matchLabels");
        let matched: Vec<&Value> = services
            .iter()
            .copied()
            .filter(|s| selects(selector, at(s, "metadata.labels")))
            .collect();
        if matched.is_empty() {
            problems.push(format!(
                "{id}: spec.selector.matchLabels matches no Service"
            ));
            continue;
        }
        let endpoints = seq(sm, "spec.endpoints");
        if endpoints.is_empty() {
            problems.push(format!("{id}: spec.endpoints is empty"));
        }
        for (i, ep) in endpoints.iter().enumerate() {
            let port = str_at(ep, "port");
            for service in &matched {
                if !seq(service, "spec.ports")
                    .iter()
                    .any(|p| str_at(p, "name") == port)
                {
                    problems.push(format!(
                        "{id}: spec.endpoints[{i}].port {port:?} is no port of Service {}",
                        name(service)
                    ));
                }
            }
            if str_at(ep, "path") != "/metrics" {
                problems.push(format!("{id}: spec.endpoints[{i}].path is not /metrics"));
            }
            if let Some(interval) = at(ep, "interval").as_str() {
                if humantime::parse_duration(interval).is_err() {
                    problems.push(format!("{id}: spec.endpoints[{i}].interval {interval:?}"));
                }
            }
        }
        for d in deployments {
            if !matched
                .iter()
                .any(|s| selects(at(s, "spec.selector"), pod_labels(d)))
            {
                problems.push(format!(
                    "{id}: scrapes no Service of Deployment {}'s pods",
                    name(d)
                ));
            }
        }
    }
    problems
}

/// PrometheusRule (a CRD): groups with unique names, each rule exactly one
/// of alert/record with an expression and known keys, each alert with a
/// severity, a summary and a runbook_url whose section exists.
fn prometheus_rule_problems(docs: &[Value]) -> Vec<String> {
    const RULE_KEYS: [&str; 7] = [
        "alert",
        "record",
        "expr",
        "for",
        "keep_firing_for",
        "labels",
        "annotations",
    ];
    let runbooks = std::fs::read_to_string(Path::new(ROOT).join("docs/runbooks.md"))
        .unwrap()
        .to_lowercase();
    let mut problems = Vec::new();
    let rules: Vec<&Value> = kinds(docs, "PrometheusRule").collect();
    if rules.is_empty() {
        problems.push("no PrometheusRule".into());
    }
    for pr in rules {
        let id = format!("PrometheusRule {}", name(pr));
        let groups = seq(pr, "spec.groups");
        if groups.is_empty() {
            problems.push(format!("{id}: spec.groups is empty"));
        }
        let mut group_names = BTreeSet::new();
        for (g, group) in groups.iter().enumerate() {
            let field = format!("{id}: spec.groups[{g}]");
            if !group_names.insert(str_at(group, "name")) || str_at(group, "name").is_empty() {
                problems.push(format!("{field}.name missing or repeated"));
            }
            if seq(group, "rules").is_empty() {
                problems.push(format!("{field}.rules is empty"));
            }
            for (r, rule) in seq(group, "rules").iter().enumerate() {
                let field = format!("{field}.rules[{r}]");
                let keys = rule.as_mapping().map(Mapping::keys).into_iter().flatten();
                for key in keys {
                    let key = key.as_str().unwrap_or("");
                    if !RULE_KEYS.contains(&key) {
                        problems.push(format!("{field}: unknown key {key:?}"));
                    }
                }
                if str_at(rule, "expr").trim().is_empty() {
                    problems.push(format!("{field}.expr is missing"));
                }
                let (alert, record) = (str_at(rule, "alert"), str_at(rule, "record"));
                if alert.is_empty() == record.is_empty() {
                    problems.push(format!("{field}: needs exactly one of alert and record"));
                }
                if alert.is_empty() {
                    continue;
                }
                if !["critical", "warning", "info"].contains(&str_at(rule, "labels.severity")) {
                    problems.push(format!("{field} ({alert}): labels.severity"));
                }
                if str_at(rule, "annotations.summary").is_empty() {
                    problems.push(format!("{field} ({alert}): annotations.summary"));
                }
                let runbook = str_at(rule, "annotations.runbook_url");
                let anchor = runbook.rsplit_once("docs/runbooks.md#").map(|(_, a)| a);
                match anchor {
                    Some(anchor) if runbooks.contains(&format!("## {anchor}\n")) => {}
                    _ => problems.push(format!(
                        "{field} ({alert}): annotations.runbook_url {runbook:?} names no \
                         section of docs/runbooks.md"
                    )),
                }
            }
        }
    }
    problems
}

/// The dashboard ConfigMap carries Grafana's sidecar label and exactly the
/// committed dashboard JSON.
fn dashboard_problems(docs: &[Value]) -> Vec<String> {
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/dashboards/lgtm-proxy.json"))
            .unwrap(),
    )
    .unwrap();
    let Some(cm) = kinds(docs, "ConfigMap").find(|c| name(c) == "lgtm-proxy-dashboard") else {
        return vec!["no ConfigMap lgtm-proxy-dashboard".into()];
    };
    let mut problems = Vec::new();
    if str_at(cm, "metadata.labels.grafana_dashboard") != "1" {
        problems
            .push("ConfigMap lgtm-proxy-dashboard: label grafana_dashboard is not \"1\"".into());
    }
    let shipped = serde_json::from_str::<serde_json::Value>(data(cm, "lgtm-proxy.json"));
    if shipped.ok() != Some(committed) {
        problems.push(
            "ConfigMap lgtm-proxy-dashboard: data[lgtm-proxy.json] is not \
             deploy/dashboards/lgtm-proxy.json"
                .into(),
        );
    }
    problems
}

/// Every file and directory the proxy is told to read is provided: the
/// mount under which the path lies exists, and its ConfigMap (rendered) or
/// Secret (the example documents it) has the key.
fn file_problems(docs: &[Value], pod: &Value, container: &Value, secrets: &[Value]) -> Vec<String> {
    let mut wanted: Vec<(String, String)> = Vec::new(); // (who asks, path)
    for e in seq(container, "env") {
        let (key, value) = (str_at(e, "name"), str_at(e, "value"));
        if key == "LGTM_CONFIG" || key.ends_with("_FILE") {
            wanted.push((format!("env {key}"), value.to_string()));
        }
    }
    let mut problems = Vec::new();
    let mounts = seq(container, "volumeMounts");
    let volumes = seq(pod, "spec.volumes");
    for m in mounts {
        if !volumes
            .iter()
            .any(|v| str_at(v, "name") == str_at(m, "name"))
        {
            problems.push(format!(
                "Deployment: volumeMount {} has no volume",
                str_at(m, "name")
            ));
        }
    }
    // The keys each mounted directory holds, from its volume's sources.
    let keys_of = |source_kind: &str, source_name: &str| -> Option<Vec<String>> {
        let (objects, field) = match source_kind {
            "configMap" => (docs, "data"),
            _ => (secrets, "stringData"),
        };
        let kind = if source_kind == "configMap" {
            "ConfigMap"
        } else {
            "Secret"
        };
        let object = kinds(objects, kind).find(|o| name(o) == source_name)?;
        Some(
            at(object, field)
                .as_mapping()
                .into_iter()
                .flat_map(Mapping::keys)
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
        )
    };
    let mut dirs: Vec<(String, Vec<String>)> = Vec::new(); // (mountPath, keys)
    for m in mounts {
        let Some(volume) = volumes
            .iter()
            .find(|v| str_at(v, "name") == str_at(m, "name"))
        else {
            continue;
        };
        let mut sources: Vec<(&str, &str)> = Vec::new();
        if let Some(n) = at(volume, "configMap.name").as_str() {
            sources.push(("configMap", n));
        }
        if let Some(n) = at(volume, "secret.secretName").as_str() {
            sources.push(("secret", n));
        }
        let mut keys = Vec::new();
        for s in seq(volume, "projected.sources") {
            for kind in ["configMap", "secret"] {
                if let Some(n) = at(s, &format!("{kind}.name")).as_str() {
                    sources.push((kind, n));
                }
            }
            // kubelet's own token file.
            if let Some(path) = at(s, "serviceAccountToken.path").as_str() {
                keys.push(path.to_string());
            }
        }
        for (kind, source) in sources {
            // Kubernetes publishes the cluster CA in every namespace.
            if (kind, source) == ("configMap", "kube-root-ca.crt") {
                keys.push("ca.crt".to_string());
                continue;
            }
            match keys_of(kind, source) {
                Some(k) => keys.extend(k),
                None => problems.push(format!(
                    "volume {}: {kind} {source} is neither rendered nor in the Secret example",
                    str_at(volume, "name")
                )),
            }
        }
        dirs.push((str_at(m, "mountPath").to_string(), keys));
    }
    // Paths named in the mounted TOML: token files and directories.
    let config_path = wanted.iter().find(|(who, _)| who == "env LGTM_CONFIG");
    if let Some((_, config_path)) = config_path {
        let text = dirs.iter().find_map(|(dir, _)| {
            let key = config_path.strip_prefix(&format!("{dir}/"))?;
            let cm = kinds(docs, "ConfigMap").find(|c| !data(c, key).is_empty())?;
            Some(data(cm, key).to_string())
        });
        if let Some(text) = text {
            let toml: toml::Value = toml::from_str(&text).unwrap();
            toml_paths(&toml, "", &mut wanted);
        }
    }
    for (who, path) in &wanted {
        let found = dirs.iter().any(|(dir, keys)| {
            path == dir
                || path
                    .strip_prefix(&format!("{dir}/"))
                    .is_some_and(|key| keys.iter().any(|k| k == key))
        });
        if !found {
            problems.push(format!(
                "{who} = {path:?}: no mounted ConfigMap or Secret provides it"
            ));
        }
    }
    problems
}

/// `*_file` and `*dir` string values anywhere in the TOML, with their keys.
fn toml_paths(v: &toml::Value, key: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                toml_paths(v, format!("{key}.{k}").trim_start_matches('.'), out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                toml_paths(v, &format!("{key}[{i}]"), out);
            }
        }
        toml::Value::String(s) if key.ends_with("_file") || key.ends_with("dir") => {
            out.push((format!("TOML {key}"), s.clone()));
        }
        _ => {}
    }
}

// ----- the tests -----

#[test]
fn every_layout_renders_validates_and_is_wired() {
    for (dir, secrets) in LAYOUTS {
        let docs = render(dir);
        let kinds: BTreeSet<&str> = docs.iter().map(|d| str_at(d, "kind")).collect();
        for kind in [
            "Deployment",
            "Service",
            "ServiceAccount",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "ServiceMonitor",
            "PrometheusRule",
            "ConfigMap",
        ] {
            assert!(kinds.contains(kind), "{dir}: no {kind} rendered");
        }
        if let Err(e) = kubernetes_validate(&docs) {
            panic!("{dir}: {e}");
        }
        let problems = wiring_problems(&docs, &secret_examples(secrets));
        assert!(problems.is_empty(), "{dir}:\n{}", problems.join("\n"));
    }
}

/// The multi-tenant overlay projects one Secret per tenant, and the token
/// files its TOML names are each checked (the check saw them all).
#[test]
fn multi_tenant_overlay_projects_a_secret_per_tenant() {
    let docs = render("overlays/multi-tenant");
    for d in kinds(&docs, "Deployment") {
        let sources: Vec<&str> = seq(d, "spec.template.spec.volumes.0.projected.sources")
            .iter()
            .map(|s| str_at(s, "secret.name"))
            .collect();
        assert_eq!(
            sources,
            ["lgtm-proxy", "lgtm-proxy-stage", "lgtm-proxy-prod"],
            "{}",
            name(d)
        );
    }
    let deployment = kinds(&docs, "Deployment").next().unwrap();
    let pod = at(deployment, "spec.template");
    let container = at(pod, "spec.containers.0");
    let secrets = secret_examples("overlays/multi-tenant/secrets.example.yaml");
    assert!(file_problems(&docs, pod, container, &secrets).is_empty());
    // Without prod's Secret, exactly prod's two token files are missing.
    let without_prod: Vec<Value> = secrets
        .into_iter()
        .filter(|s| name(s) != "lgtm-proxy-prod")
        .collect();
    let problems = file_problems(&docs, pod, container, &without_prod);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("secret lgtm-proxy-prod")),
        "{problems:?}"
    );
    let missing: Vec<&String> = problems.iter().filter(|p| p.starts_with("TOML")).collect();
    assert_eq!(missing.len(), 2, "{problems:?}");
    for file in [
        "/var/run/secrets/lgtm/prod-token",
        "/var/run/secrets/lgtm/kubecost-prod",
    ] {
        assert!(missing.iter().any(|p| p.contains(file)), "{missing:?}");
    }
}

type Edit = fn(&mut [Value]);

fn find(docs: &[Value], kind: &str) -> usize {
    docs.iter().position(|d| str_at(d, "kind") == kind).unwrap()
}

fn named(docs: &[Value], kind: &str, object: &str) -> usize {
    docs.iter()
        .position(|d| str_at(d, "kind") == kind && name(d) == object)
        .unwrap()
}

/// Each check fails, naming object and field, on a manifest broken on
/// purpose; strict schema validation refuses an unknown field and a
/// built-in kind with a wrong apiVersion.
#[test]
fn broken_manifests_are_named() {
    let good = render("overlays/multi-tenant");
    let secrets = secret_examples("overlays/multi-tenant/secrets.example.yaml");
    let broken = |edit: Edit| {
        let mut docs = good.clone();
        edit(&mut docs);
        wiring_problems(&docs, &secrets).join("\n")
    };
    let cases: [(&str, Edit); 17] = [
        ("Deployment lgtm-proxy-jobs: spec.replicas is not 1", |d| {
            let i = named(d, "Deployment", "lgtm-proxy-jobs");
            d[i]["spec"]["replicas"] = 2.into();
        }),
        (
            "Deployment lgtm-proxy-jobs: spec.strategy.type is not Recreate",
            |d| {
                let i = named(d, "Deployment", "lgtm-proxy-jobs");
                d[i]["spec"]["strategy"]["type"] = "RollingUpdate".into();
            },
        ),
        (
            "Deployment lgtm-proxy-jobs: spec.template.spec differs from Deployment lgtm-proxy's",
            |d| {
                let i = named(d, "Deployment", "lgtm-proxy-jobs");
                d[i]["spec"]["template"]["spec"]["volumes"]
                    .as_sequence_mut()
                    .unwrap()
                    .pop();
            },
        ),
        ("2 Deployments with LGTM_ROLE proxy and 0 with jobs", |d| {
            let i = named(d, "Deployment", "lgtm-proxy-jobs");
            d[i]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "proxy".into();
        }),
        (
            "PodDisruptionBudget lgtm-proxy: spec.selector.matchLabels selects the jobs pod",
            |d| {
                let i = find(d, "PodDisruptionBudget");
                d[i]["spec"]["selector"]["matchLabels"]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/component");
            },
        ),
        ("Service lgtm-proxy: port http reaches the jobs pods", |d| {
            let i = named(d, "Service", "lgtm-proxy");
            d[i]["spec"]["selector"]
                .as_mapping_mut()
                .unwrap()
                .remove("app.kubernetes.io/component");
        }),
        (
            "ServiceMonitor lgtm-proxy: scrapes no Service of Deployment lgtm-proxy-jobs's pods",
            |d| {
                let i = named(d, "Service", "lgtm-proxy-jobs");
                d[i]["metadata"]["labels"]["app.kubernetes.io/name"] = "other".into();
            },
        ),
        (
            "spec.endpoints[0].port \"metrics\" is no port of Service lgtm-proxy",
            |d| {
                let i = find(d, "ServiceMonitor");
                d[i]["spec"]["endpoints"][0]["port"] = "metrics".into();
            },
        ),
        (
            "ServiceMonitor lgtm-proxy: spec.selector.matchLabels matches no Service",
            |d| {
                let i = find(d, "ServiceMonitor");
                d[i]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "x".into();
            },
        ),
        ("Service lgtm-proxy: spec.selector selects no pod", |d| {
            let i = find(d, "Service");
            d[i]["spec"]["selector"]["app.kubernetes.io/name"] = "proxy".into();
        }),
        (
            "Service lgtm-proxy: targetPort web is no container port",
            |d| {
                let i = find(d, "Service");
                d[i]["spec"]["ports"][0]["targetPort"] = "web".into();
            },
        ),
        ("terminationGracePeriodSeconds 30 does not cover", |d| {
            let i = find(d, "Deployment");
            d[i]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30.into();
        }),
        (
            "PodDisruptionBudget lgtm-proxy: spec.selector.matchLabels selects no pod",
            |d| {
                let i = find(d, "PodDisruptionBudget");
                d[i]["spec"]["selector"]["matchLabels"]["app"] = "other".into();
            },
        ),
        (
            "spec.groups[0].rules[0]: needs exactly one of alert and record",
            |d| {
                let i = find(d, "PrometheusRule");
                d[i]["spec"]["groups"][0]["rules"][0]["record"] = "x:y".into();
            },
        ),
        ("names no section of docs/runbooks.md", |d| {
            let i = find(d, "PrometheusRule");
            d[i]["spec"]["groups"][0]["rules"][0]["annotations"]["runbook_url"] =
                "https://example.com/docs/runbooks.md#nosuchalert".into();
        }),
        (
            "ConfigMap lgtm-proxy-dashboard: label grafana_dashboard is not \"1\"",
            |d| {
                let i = d
                    .iter()
                    .position(|c| name(c) == "lgtm-proxy-dashboard")
                    .unwrap();
                d[i]["metadata"]["labels"]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("grafana_dashboard");
            },
        ),
        (
            "env LGTM_CONFIG = \"/etc/lgtm-proxy/proxy.toml\": no mounted ConfigMap",
            |d| {
                let i = find(d, "Deployment");
                let env = d[i]["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_sequence_mut()
                    .unwrap();
                let e = env
                    .iter_mut()
                    .find(|e| str_at(e, "name") == "LGTM_CONFIG")
                    .unwrap();
                e["value"] = "/etc/lgtm-proxy/proxy.toml".into();
            },
        ),
    ];
    for (want, edit) in &cases {
        let problems = broken(*edit);
        assert!(problems.contains(want), "want {want:?}, got:\n{problems}");
    }

    let mut docs = good.clone();
    let i = find(&docs, "Deployment");
    docs[i]["spec"]["template"]["spec"]["containers"][0]["bogusField"] = true.into();
    let e = kubernetes_validate(&docs).unwrap_err();
    assert!(e.contains("bogusField"), "{e}");

    let mut docs = good.clone();
    let i = find(&docs, "HorizontalPodAutoscaler");
    docs[i]["apiVersion"] = "autoscaling/v9".into();
    let e = kubernetes_validate(&docs).unwrap_err();
    assert!(e.contains("HorizontalPodAutoscaler"), "{e}");
}

/// The zero-secret client example (an Alloy Deployment with a projected
/// token for the audience lgtm-proxy) validates, and its ServiceAccount
/// and audience are the ones the overlay's config accepts.
#[test]
fn the_zero_secret_client_example_validates_and_matches_the_overlay() {
    let example = secret_examples("overlays/multi-tenant/alloy-client.example.yaml");
    if let Err(e) = kubernetes_validate(&example) {
        panic!("alloy-client.example.yaml: {e}");
    }
    let deployment = kinds(&example, "Deployment").next().unwrap();
    let sa = str_at(deployment, "spec.template.spec.serviceAccountName");
    let ns = str_at(deployment, "metadata.namespace");
    let audience = seq(deployment, "spec.template.spec.volumes")
        .iter()
        .flat_map(|v| seq(v, "projected.sources"))
        .find_map(|s| at(s, "serviceAccountToken.audience").as_str())
        .expect("a projected token");
    let toml = std::fs::read_to_string(
        Path::new(ROOT).join("deploy/kustomize/overlays/multi-tenant/lgtm-proxy.toml"),
    )
    .unwrap();
    assert!(
        toml.contains(&format!("service_account = \"{ns}/{sa}\"")),
        "{ns}/{sa}"
    );
    assert!(
        toml.contains(&format!("audiences = [\"{audience}\"]")),
        "{audience}"
    );
    let docs = render("overlays/multi-tenant");
    assert!(kinds(&docs, "ClusterRoleBinding")
        .any(|b| str_at(b, "roleRef.name") == "system:service-account-issuer-discovery"));
}
