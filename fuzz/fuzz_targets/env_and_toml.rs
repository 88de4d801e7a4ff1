//! An arbitrary environment (names and values as the kernel gives them,
//! not always UTF-8) and TOML text -> config load and validation, as
//! `serve` and `check-config` do it. Input: the TOML text, a NUL byte,
//! then `NAME=VALUE` lines of raw bytes (no NUL: no TOML file). Never a panic; every problem names a
//! key; no value of a token (an environment variable or TOML key whose name
//! holds TOKEN and that is not a file path) ever shows in a problem.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

/// What a token value starts with for the leak check to watch it.
const MARKER: &str = "s3cr3t";

/// A key that holds a token (not the path of a file with one).
fn holds_token(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("token") && !lower.ends_with("file")
}

/// String values of token keys in TOML text, found line by line so that
/// text that does not parse is covered too: `...token... = "value"` or
/// `'value'`.
fn toml_token_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !holds_token(key.trim()) {
            continue;
        }
        let value = value.trim();
        for q in ['"', '\''] {
            if let Some(inner) = value.strip_prefix(q).and_then(|v| v.split(q).next()) {
                out.push(inner.to_string());
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (toml, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let vars: Vec<(OsString, OsString)> = env
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let eq = line.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(line[..eq].to_vec()),
                OsString::from_vec(line[eq + 1..].to_vec()),
            ))
        })
        .collect();
    let Err(errors) = lgtm_proxy::config::load_text(toml, vars.clone()) else {
        return;
    };
    let problems = errors.0;
    assert!(!problems.is_empty(), "refused without a problem");
    for p in &problems {
        let key = p.split_once(": ").map(|(k, _)| k.trim()).unwrap_or("");
        assert!(!key.is_empty(), "a problem that names no key: {p:?}");
    }
    // Token values that carry the marker (so they cannot occur in a
    // problem's own words by chance; the seeds and the dictionary carry
    // it) and are not also the value of something that is not a token
    // (which may be shown).
    let mut secrets: Vec<String> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for (n, v) in &vars {
        let (Some(n), Some(v)) = (n.to_str(), v.to_str()) else {
            // Shown (lossily) by name, never by value.
            others.push(n.to_string_lossy().into_owned());
            continue;
        };
        if holds_token(n) {
            secrets.push(v.to_string());
        } else {
            others.push(format!("{n}{v}"));
        }
    }
    if let Some(text) = toml {
        secrets.extend(toml_token_values(text));
        others.push(
            text.lines()
                .filter(|l| !l.to_ascii_lowercase().contains("token"))
                .collect(),
        );
    }
    for s in secrets.iter().filter(|s| s.starts_with(MARKER)) {
        if others.iter().any(|o| o.contains(s.as_str())) {
            continue;
        }
        for p in &problems {
            assert!(
                !p.contains(s.as_str()),
                "a token value shows in a problem: {p:?}"
            );
        }
    }
});
