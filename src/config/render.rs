//! `check-config` output: the effective config as TOML, secrets redacted.

use serde::Serialize;

use super::{Config, LogFormat, REDACTED};

#[derive(Serialize)]
struct Effective<'a> {
    listen: String,
    shutdown_delay: String,
    shutdown_grace: String,
    header_read_timeout: String,
    log: &'a str,
    log_format: &'static str,
    upstreams: std::collections::BTreeMap<&'a str, EffectiveUpstream<'a>>,
    routes: Vec<EffectiveRoute<'a>>,
}

#[derive(Serialize)]
struct EffectiveUpstream<'a> {
    url: String,
    basic_auth: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'static str>,
    /// `""`: no X-Scope-OrgID is sent.
    tenant: &'a str,
    timeout: String,
    connect_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

#[derive(Serialize)]
struct EffectiveRoute<'a> {
    prefix: &'a str,
    upstream: &'a str,
    rewrite: &'a str,
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Render the effective config. Tokens appear only as `<redacted>`.
pub fn render_effective(c: &Config) -> String {
    let eff = Effective {
        listen: c.listen.to_string(),
        shutdown_delay: human(c.shutdown_delay),
        shutdown_grace: human(c.shutdown_grace),
        header_read_timeout: human(c.header_read_timeout),
        log: &c.log,
        log_format: match c.log_format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        },
        upstreams: c
            .upstreams
            .iter()
            .map(|(name, u)| {
                (
                    name.as_str(),
                    EffectiveUpstream {
                        url: u.url(),
                        basic_auth: u.credentials.is_some(),
                        user: u.credentials.as_ref().map(|c| c.user.as_str()),
                        token: u.credentials.as_ref().map(|_| REDACTED),
                        tenant: u.tenant.as_deref().unwrap_or(""),
                        timeout: human(u.timeout),
                        connect_timeout: human(u.connect_timeout),
                        ca_file: u.ca.as_ref().map(|ca| ca.path.display().to_string()),
                    },
                )
            })
            .collect(),
        routes: c
            .routes
            .iter()
            .map(|r| EffectiveRoute {
                prefix: &r.prefix,
                upstream: &r.upstream,
                rewrite: &r.rewrite,
            })
            .collect(),
    };
    toml::to_string(&eff).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}
