//! What validation carries along: the problems found so far (`key:
//! message`), the files read, the previous config's last good upstream
//! tokens on a reload, and the small checks every section uses.

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use crate::config::{read_secret_file, DynamicConfig, Secret};

/// Problems found so far, and every file read (to watch for changes).
/// On a reload (`previous` set), a client credential file that can't be
/// used revokes that client's tokens and an upstream token file that can't
/// be used keeps its last good token: both are `warnings`, not problems,
/// so the rest of the config still reloads.
#[derive(Default)]
pub(super) struct Problems(
    pub(super) Vec<String>,
    pub(super) Vec<std::path::PathBuf>,
    pub(super) Option<Previous>,
    pub(super) Vec<String>,
);

impl Problems {
    pub(super) fn watch(&mut self, path: &Path) {
        if !self.1.iter().any(|p| p == path) {
            self.1.push(path.to_path_buf());
        }
    }

    pub(super) fn add(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    /// A client credential file that can't be used. At start it is a
    /// problem (exit 78); on a reload it revokes what it held (fail
    /// closed) and the rest of the config still reloads.
    pub(super) fn client_credentials(
        &mut self,
        key: impl std::fmt::Display,
        msg: impl std::fmt::Display,
    ) {
        if self.2.is_some() {
            self.3
                .push(format!("{key}: {msg}; its client tokens are revoked"));
        } else {
            self.add(key, msg);
        }
    }
}

/// What a reload may fall back on: the running config's upstream tokens,
/// by their key (`upstreams.loki.token`, `tenants.stage.upstreams.loki.token`).
pub(super) struct Previous {
    tokens: BTreeMap<String, Secret>,
}

impl Previous {
    pub(super) fn of(config: &DynamicConfig) -> Previous {
        let mut tokens = BTreeMap::new();
        let scopes = std::iter::once((String::new(), &config.upstreams)).chain(
            config
                .tenants
                .values()
                .map(|t| (format!("tenants.{}.", t.name), &t.upstreams)),
        );
        for (scope, ups) in scopes {
            for u in ups.values() {
                if let Some(c) = &u.credentials {
                    tokens.insert(
                        format!("{scope}upstreams.{}.token", u.name),
                        c.token.clone(),
                    );
                }
            }
        }
        Previous { tokens }
    }
}

pub(super) fn positive(p: &mut Problems, key: &str, n: Option<usize>) -> Option<usize> {
    if n == Some(0) {
        p.add(key, "must be at least 1 (omit it for no limit)");
    }
    n.filter(|n| *n > 0)
}

pub(super) fn duration(
    p: &mut Problems,
    key: &str,
    value: &Option<String>,
    default: Duration,
    zero_ok: bool,
) -> Duration {
    let Some(text) = value else { return default };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() && !zero_ok => {
            p.add(key, "must be greater than zero");
            default
        }
        Ok(d) => d,
        Err(_) => {
            p.add(key, "not a duration like \"60s\", \"5m\" or \"1h30m\"");
            default
        }
    }
}

/// A secret from `token` or `token_file` (never both). Files are read now;
/// a trailing newline is trimmed; an empty secret is a problem.
pub(super) fn secret(
    p: &mut Problems,
    key: &str,
    token: Option<&Secret>,
    file: Option<&Path>,
) -> Option<Secret> {
    match (token, file) {
        (Some(_), Some(_)) => {
            p.add(key, format!("set either {key} or {key}_file, not both"));
            None
        }
        (Some(t), None) if t.is_empty() => {
            p.add(key, "is empty");
            None
        }
        (Some(t), None) => Some(t.clone()),
        (None, Some(path)) => {
            p.watch(path);
            secret_from_file(p, key, path)
        }
        (None, None) => None,
    }
}

pub(super) fn secret_from_file(p: &mut Problems, key: &str, path: &Path) -> Option<Secret> {
    match read_secret_file(path) {
        Ok(s) => Some(s),
        Err(msg) => {
            // On a reload, an upstream's token fails static: the proxy
            // keeps writing with the last good one.
            let kept = p.2.as_ref().and_then(|prev| prev.tokens.get(key)).cloned();
            match kept {
                Some(token) => {
                    p.3.push(format!("{key}_file: {msg}; the last good token is kept"));
                    Some(token)
                }
                None => {
                    p.add(format!("{key}_file"), msg);
                    None
                }
            }
        }
    }
}
