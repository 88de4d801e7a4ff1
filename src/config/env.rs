//! The environment layer, mapped by the contract's explicit rules rather than
//! by splitting names on `_` (which gets `LGTM_TOKEN_FILE` and
//! `LGTM_TEMPO_GRPC_URL` wrong): reserved names first, then
//! `LGTM_<U>_<SUFFIX>` with the longest known upstream name. Every other
//! `LGTM_*` variable is ignored: Kubernetes injects service-link variables
//! such as `LGTM_PROXY_SERVICE_HOST` into every pod.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Upstreams known without any TOML: their env vars always work.
pub const BUILTIN_UPSTREAMS: &[&str] = &[
    "prometheus",
    "loki",
    "tempo",
    "tempo_grpc",
    "otlp",
    "alertmanager",
    "pyroscope",
];

/// Reserved top-level names and the config key each one sets.
const RESERVED: &[(&str, &str)] = &[
    ("LGTM_LISTEN", "listen"),
    ("LGTM_ADMIN_LISTEN", "admin_listen"),
    ("LGTM_TOKEN", "token"),
    ("LGTM_TOKEN_FILE", "token_file"),
    ("LGTM_LOG", "log"),
    ("LGTM_LOG_FORMAT", "log_format"),
    ("LGTM_SHUTDOWN_DELAY", "shutdown_delay"),
    ("LGTM_SHUTDOWN_GRACE", "shutdown_grace"),
];

/// `LGTM_CONFIG` is reserved too, but it is read by the CLI, not mapped.
const RESERVED_UNMAPPED: &[&str] = &["LGTM_CONFIG"];

/// The fixed per-upstream suffixes and their keys.
const SUFFIXES: &[(&str, &str)] = &[
    ("_URL", "url"),
    ("_USER", "user"),
    ("_TOKEN", "token"),
    ("_TOKEN_FILE", "token_file"),
    ("_TENANT", "tenant"),
    ("_TIMEOUT", "timeout"),
    ("_CONNECT_TIMEOUT", "connect_timeout"),
    ("_CA_FILE", "ca_file"),
    ("_BASIC_AUTH", "basic_auth"),
];

/// What one variable sets: a top-level key, or a key of one upstream.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvKey<'a> {
    Top(&'static str),
    Upstream(&'a str, &'static str),
}

/// Map one variable name to the key it sets, or `None` to ignore it.
/// `upstreams` holds lower-case names (built-ins plus the TOML's).
pub fn map_name<'a>(name: &str, upstreams: &'a [String]) -> Option<EnvKey<'a>> {
    if let Some((_, key)) = RESERVED.iter().find(|(n, _)| *n == name) {
        return Some(EnvKey::Top(key));
    }
    if RESERVED_UNMAPPED.contains(&name) {
        return None;
    }
    let rest = name.strip_prefix("LGTM_")?;
    let mut best: Option<EnvKey<'a>> = None;
    let mut best_len = 0;
    for (suffix, key) in SUFFIXES {
        let Some(upper) = rest.strip_suffix(suffix) else {
            continue;
        };
        for u in upstreams {
            if u.len() > best_len && u.eq_ignore_ascii_case(upper) {
                best = Some(EnvKey::Upstream(u, key));
                best_len = u.len();
            }
        }
    }
    best
}

/// The environment as a figment layer.
pub struct EnvLayer {
    dict: Dict,
}

impl EnvLayer {
    /// Build the layer from `vars` for the given upstream names. Empty values
    /// count as unset (a templated manifest often renders `""`), except
    /// `_TENANT`, where `""` means "send no X-Scope-OrgID".
    pub fn from_vars<I>(vars: I, upstreams: &[String]) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut dict = Dict::new();
        for (name, value) in vars {
            let Some(key) = map_name(&name, upstreams) else {
                continue;
            };
            match key {
                EnvKey::Top(k) => {
                    if !value.is_empty() {
                        dict.insert(k.to_string(), Value::from(value));
                    }
                }
                EnvKey::Upstream(u, k) => {
                    if value.is_empty() && k != "tenant" {
                        continue;
                    }
                    let value = match (k, value.as_str()) {
                        ("basic_auth", "true") => Value::from(true),
                        ("basic_auth", "false") => Value::from(false),
                        _ => Value::from(value),
                    };
                    let ups = dict
                        .entry("upstreams".to_string())
                        .or_insert_with(|| Value::from(Dict::new()));
                    if let Value::Dict(_, ups) = ups {
                        let up = ups
                            .entry(u.to_string())
                            .or_insert_with(|| Value::from(Dict::new()));
                        if let Value::Dict(_, up) = up {
                            up.insert(k.to_string(), value);
                        }
                    }
                }
            }
        }
        EnvLayer { dict }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        let mut v: Vec<String> = BUILTIN_UPSTREAMS.iter().map(|s| s.to_string()).collect();
        v.push("loki_connect".into());
        v
    }

    #[test]
    fn reserved_names_win_over_upstream_suffixes() {
        let n = names();
        assert_eq!(
            map_name("LGTM_TOKEN_FILE", &n),
            Some(EnvKey::Top("token_file"))
        );
        assert_eq!(map_name("LGTM_TOKEN", &n), Some(EnvKey::Top("token")));
        assert_eq!(
            map_name("LGTM_LOG_FORMAT", &n),
            Some(EnvKey::Top("log_format"))
        );
        assert_eq!(map_name("LGTM_CONFIG", &n), None);
    }

    #[test]
    fn longest_upstream_name_wins() {
        let n = names();
        assert_eq!(
            map_name("LGTM_TEMPO_GRPC_URL", &n),
            Some(EnvKey::Upstream("tempo_grpc", "url"))
        );
        assert_eq!(
            map_name("LGTM_TEMPO_URL", &n),
            Some(EnvKey::Upstream("tempo", "url"))
        );
        assert_eq!(
            map_name("LGTM_LOKI_TOKEN_FILE", &n),
            Some(EnvKey::Upstream("loki", "token_file"))
        );
        assert_eq!(
            map_name("LGTM_LOKI_CONNECT_TIMEOUT", &n),
            Some(EnvKey::Upstream("loki_connect", "timeout"))
        );
        assert_eq!(
            map_name("LGTM_PROMETHEUS_CONNECT_TIMEOUT", &n),
            Some(EnvKey::Upstream("prometheus", "connect_timeout"))
        );
    }

    #[test]
    fn service_link_and_unknown_variables_are_ignored() {
        let n = names();
        for v in [
            "LGTM_PROXY_SERVICE_HOST",
            "LGTM_PROXY_PORT_8085_TCP_ADDR",
            "LGTM_PROXY_SERVICE_PORT",
            "LGTM_UNKNOWN_URL",
            "LGTM_LOKI_COLOR",
            "PATH",
        ] {
            assert_eq!(map_name(v, &n), None, "{v}");
        }
    }

    #[test]
    fn empty_values_are_unset_except_tenant() {
        let n = names();
        let layer = EnvLayer::from_vars(
            [
                ("LGTM_LOKI_URL".to_string(), String::new()),
                ("LGTM_LOKI_TENANT".to_string(), String::new()),
                ("LGTM_LOKI_BASIC_AUTH".to_string(), "false".to_string()),
            ],
            &n,
        );
        let loki = layer.dict["upstreams"].as_dict().unwrap()["loki"]
            .as_dict()
            .unwrap()
            .clone();
        assert!(!loki.contains_key("url"));
        assert_eq!(loki["tenant"].as_str(), Some(""));
        assert_eq!(loki["basic_auth"].to_bool(), Some(false));
    }
}
